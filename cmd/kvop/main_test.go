package main

// End-to-end tests: they build the kvop binary once and run it, as users do, against a real
// server of every backend (internal/backendtest).

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/backendtest"
)

// kvopBin is the binary under test, built by TestMain.
var kvopBin string

func TestMain(m *testing.M) {
	dir, err := binDir()
	if err == nil {
		kvopBin = filepath.Join(dir, "kvop")
		err = build(kvopBin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "building kvop:", err)
		os.Exit(1)
	}
	backendtest.Main(m)
}

// binDir is where the binary goes: next to the test binary when that lives in the go
// command's work directory, which the go command removes afterwards (backendtest.Main exits
// the process, so TestMain cannot clean up after itself); a new temporary directory otherwise.
func binDir() (string, error) {
	if exe, err := os.Executable(); err == nil && strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return filepath.Dir(exe), nil
	}
	return os.MkdirTemp("", "kvop-cli-test-")
}

// build compiles this package to out, with the race detector when the tests have it, so that
// a race in the command code fails these tests too.
func build(out string, extra ...string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	args := append([]string{"build", "-o", out}, extra...)
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(goTool, append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// kvop runs the binary with the global flags of one test: its target's store and a key
// prefix of its own.
type kvop struct {
	t      *testing.T
	global []string
	prefix string
	tg     *backendtest.Target
}

func newKvop(t *testing.T, tg *backendtest.Target) *kvop {
	t.Helper()
	var random [4]byte
	_, _ = rand.Read(random[:])
	prefix := "kvop-cli-test/" + strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()) + "-" + hex.EncodeToString(random[:])
	global := []string{"--backend", string(tg.Backend), "--endpoints", strings.Join(tg.Addrs, ","),
		"--prefix", prefix, "--timeout", "10s"}
	if tg.Config.SessionTimeout > 0 {
		global = append(global, "--session-timeout", tg.Config.SessionTimeout.String())
	}
	return &kvop{t: t, global: global, prefix: prefix, tg: tg}
}

// result is how one run of kvop ended.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// command returns an exec.Cmd of kvop with the global flags, in an environment without KVOP_*
// variables (so that the developer's own settings do not leak in).
func (k *kvop) command(args ...string) *exec.Cmd {
	return bare(append(append([]string{}, k.global...), args...)...)
}

// bare returns an exec.Cmd of kvop with args only.
func bare(args ...string) *exec.Cmd {
	cmd := exec.Command(kvopBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KVOP_") && !strings.HasPrefix(kv, "GORACE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// The race runtime sleeps a second at exit by default; a race makes kvop exit 66 and say so.
	cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	// A kvop left behind by a failed test must not outlive the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// run runs kvop to completion with stdin.
func (k *kvop) runIn(stdin string, args ...string) result {
	k.t.Helper()
	cmd := k.command(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{code: exitCode(err), stdout: stdout.String(), stderr: stderr.String()}
	if err != nil && r.code < 0 {
		k.t.Fatalf("running kvop %q: %v", args, err)
	}
	noRace(k.t, r.stderr)
	return r
}

func (k *kvop) run(args ...string) result { k.t.Helper(); return k.runIn("", args...) }

// must runs kvop and fails the test unless it succeeds.
func (k *kvop) must(args ...string) string {
	k.t.Helper()
	r := k.run(args...)
	if r.code != 0 {
		k.t.Fatalf("kvop %q: %s", args, r)
	}
	return r.stdout
}

// noRace fails the test when the race detector reported a race in kvop.
func noRace(t *testing.T, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "WARNING: DATA RACE") {
		t.Errorf("kvop has a data race:\n%s", stderr)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

// proc is a kvop that runs until told to stop (watch, elect, register).
type proc struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string // stdout, line by line; closed at EOF

	mu     sync.Mutex
	stdout []string // every line read so far
	stderr bytes.Buffer

	done chan struct{}
	code int
}

func (k *kvop) start(args ...string) *proc { k.t.Helper(); return k.startWith(nil, args...) }

// startWith starts kvop with extra environment variables (for the commands elect runs).
func (k *kvop) startWith(env []string, args ...string) *proc {
	k.t.Helper()
	p := &proc{t: k.t, cmd: k.command(args...), lines: make(chan string, 1024), done: make(chan struct{})}
	p.cmd.Env = append(p.cmd.Env, env...)
	r, w, err := os.Pipe()
	if err != nil {
		k.t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = w, lockedWriter{&p.mu, &p.stderr}
	if err := p.cmd.Start(); err != nil {
		k.t.Fatalf("starting kvop %q: %v", args, err)
	}
	w.Close() // the child has its copy; EOF comes when it (and its own children) close theirs
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout = append(p.stdout, sc.Text())
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	go func() {
		p.code = exitCode(p.cmd.Wait())
		close(p.done)
	}()
	k.t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}

// Stderr returns what the process wrote on stderr so far.
func (p *proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Stdout returns the lines the process wrote on stdout so far.
func (p *proc) Stdout() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.stdout...)
}

// next returns the next stdout line, failing the test after timeout.
func (p *proc) next(timeout time.Duration) string {
	p.t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			p.t.Fatalf("kvop ended its output early (stderr %q)", p.Stderr())
		}
		return line
	case <-time.After(timeout):
		p.t.Fatalf("kvop printed no line within %s (stderr %q)", timeout, p.Stderr())
	}
	return ""
}

// waitLine returns the next stdout line that starts with prefix.
func (p *proc) waitLine(prefix string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			p.t.Fatalf("kvop printed no %q line within %s (stdout %q, stderr %q)", prefix, timeout, p.Stdout(), p.Stderr())
		}
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("kvop ended its output before a %q line (stdout %q, stderr %q)", prefix, p.Stdout(), p.Stderr())
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-time.After(left):
		}
	}
}

// quiet checks that no stdout line starting with prefix comes within d.
func (p *proc) quiet(prefix string, d time.Duration) {
	p.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return
			}
			if strings.HasPrefix(line, prefix) {
				p.t.Fatalf("kvop printed %q, want no %q line yet", line, prefix)
			}
		case <-deadline:
			return
		}
	}
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signalling kvop: %v", err)
	}
}

// wait returns the exit code once the process has exited, failing the test after timeout.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		noRace(p.t, p.Stderr())
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("kvop did not exit within %s (stderr %q)", timeout, p.Stderr())
	}
	return -1
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitStderr waits until the process has written want on stderr.
func (p *proc) waitStderr(want string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Stderr(), want) {
		if time.Now().After(deadline) || p.exited() {
			p.t.Fatalf("kvop wrote no %q on stderr within %s (stderr %q)", want, timeout, p.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
