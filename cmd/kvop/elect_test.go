package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/backendtest"
)

// leaderScript is elect's CMD in these tests: it claims a marker directory (mkdir is atomic,
// so a second CMD running at the same time fails and says "overlap"), prints "started ID TERM",
// and on SIGTERM releases the marker and prints "stopped ID".
const leaderScript = `
mkdir "$MARKER" 2>/dev/null || { echo "overlap $KVOP_LEADER_ID"; exit 99; }
trap 'rmdir "$MARKER"; echo "stopped $KVOP_LEADER_ID"; exit 0' TERM
echo "started $KVOP_LEADER_ID $KVOP_LEADER_TERM"
sleep 120 &
wait
`

// electCase is one scenario of kvop elect on one backend.
type electCase struct {
	name string
	// twoProcesses: the case needs another kvop to use the store while one runs elect, which
	// a BoltDB file (open in one process at a time) does not allow.
	twoProcesses bool
	run          func(t *testing.T, k *kvop, marker string)
}

func TestElect(t *testing.T) {
	cases := []electCase{
		{"SIGTERM stops the command and resigns", false, electSignal},
		{"command exit code is kvop's", false, electExitCode},
		{"two candidates never run the command together", true, electExclusive},
		{"lost leadership stops and restarts the command", true, electRestart},
	}
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		for _, c := range cases {
			if c.twoProcesses && tg.SingleProcess {
				t.Logf("%s: not running %q: it needs two processes on the store, and a %s file is open in one at a time",
					tg.Backend, c.name, tg.Backend)
				continue
			}
			t.Run(c.name, func(t *testing.T) {
				k := newKvop(t, tg.Fresh(t))
				c.run(t, k, filepath.Join(t.TempDir(), "leader"))
			})
		}
	})
}

// elect starts "kvop elect" of the key "leader" as id, running leaderScript.
func (k *kvop) elect(id, marker string, extra ...string) *proc {
	args := append([]string{"elect", "--key", "leader", "--id", id, "--grace", "5s"}, extra...)
	return k.startWith([]string{"MARKER=" + marker}, append(args, "--", "sh", "-c", leaderScript)...)
}

// term parses the term of a "started ID TERM" line.
func term(t *testing.T, line string) uint64 {
	t.Helper()
	f := strings.Fields(line)
	n, err := strconv.ParseUint(f[len(f)-1], 10, 64)
	if err != nil || n == 0 {
		t.Fatalf("line %q: want a positive term at its end", line)
	}
	return n
}

func electSignal(t *testing.T, k *kvop, marker string) {
	p := k.elect("a", marker)
	term(t, p.waitLine("started a ", startTimeout))
	if !k.tg.SingleProcess {
		if got := k.must("get", "leader"); got != "a\n" {
			t.Errorf("the leader key holds %q while a leads, want its id", got)
		}
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(eventTimeout); code != 128+int(syscall.SIGTERM) {
		t.Errorf("kvop elect after SIGTERM: exit %d, want %d (stderr %q)", code, 128+int(syscall.SIGTERM), p.Stderr())
	}
	if !contains(p.Stdout(), "stopped a") {
		t.Errorf("the command was not stopped by SIGTERM: stdout %q", p.Stdout())
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the command's marker is still there: %v", err)
	}
	// Resigned, not left to expire: the key is gone as soon as kvop has exited.
	if r := k.run("get", "leader"); r.code != 3 {
		t.Errorf("get of the leader key right after kvop elect exited: %s; want exit 3 (key not found)", r)
	}
}

func electExitCode(t *testing.T, k *kvop, _ string) {
	r := k.run("elect", "--key", "leader", "--", "sh", "-c", `echo "term $KVOP_LEADER_TERM"; exit 7`)
	if r.code != 7 || !strings.HasPrefix(r.stdout, "term ") {
		t.Fatalf("kvop elect -- sh -c 'exit 7': %s; want exit 7 and the command's output", r)
	}
	term(t, strings.TrimSpace(r.stdout))
	if r := k.run("get", "leader"); r.code != 3 {
		t.Errorf("get of the leader key after the command exited: %s; want exit 3 (key not found)", r)
	}
	r = k.run("elect", "--key", "leader", "--", "no-such-command-kvop")
	if r.code != 127 {
		t.Errorf("kvop elect of a missing command: %s; want exit 127", r)
	}
	oneLine(t, r, "no-such-command-kvop")
	if r := k.run("elect", "--key", "leader", "--", "true"); r.code != 0 {
		t.Errorf("kvop elect -- true: %s; want exit 0", r)
	}
}

func electExclusive(t *testing.T, k *kvop, marker string) {
	a := k.elect("a", marker)
	termA := term(t, a.waitLine("started a ", startTimeout))
	b := k.elect("b", marker)
	b.quiet("started b", 2*time.Second) // b campaigns, and waits

	stopped := time.Now()
	a.signal(syscall.SIGTERM)
	line := b.waitLine("started b ", eventTimeout)
	took := time.Since(stopped)
	t.Logf("b started its command %s after a got SIGTERM", took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("b started %s after a was told to stop; want about a second at most", took)
	}
	if termB := term(t, line); termB <= termA {
		t.Errorf("b's term %d is not above a's %d", termB, termA)
	}
	if code := a.wait(eventTimeout); code != 128+int(syscall.SIGTERM) {
		t.Errorf("a: exit %d (stderr %q)", code, a.Stderr())
	}

	// A candidate that is still waiting stops at once on SIGTERM, without running anything.
	c := k.elect("c", marker)
	c.quiet("started c", time.Second)
	c.signal(syscall.SIGTERM)
	if code := c.wait(eventTimeout); code != 128+int(syscall.SIGTERM) || len(c.Stdout()) != 0 {
		t.Errorf("waiting candidate after SIGTERM: exit %d, stdout %q, stderr %q", code, c.Stdout(), c.Stderr())
	}

	b.signal(syscall.SIGTERM)
	b.wait(eventTimeout)
	for _, p := range []*proc{a, b} {
		if contains(p.Stdout(), "overlap") {
			t.Errorf("two commands ran at once: stdout %q", p.Stdout())
		}
	}
}

func electRestart(t *testing.T, k *kvop, marker string) {
	p := k.elect("a", marker)
	first := term(t, p.waitLine("started a ", startTimeout))
	// Deleting the leader key takes leadership away; kvop stops the command and, elected
	// again, runs it anew with a new term.
	k.must("rm", "leader")
	p.waitLine("stopped a", eventTimeout)
	second := term(t, p.waitLine("started a ", eventTimeout+5*time.Second))
	if second <= first {
		t.Errorf("term after re-election %d, want above %d", second, first)
	}
	p.signal(syscall.SIGINT)
	if code := p.wait(eventTimeout); code != 128+int(syscall.SIGINT) {
		t.Errorf("after SIGINT: exit %d, want %d (stderr %q)", code, 128+int(syscall.SIGINT), p.Stderr())
	}
	if contains(p.Stdout(), "overlap") {
		t.Errorf("two commands ran at once: stdout %q", p.Stdout())
	}
}

func contains(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}
