package backendtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Fault tests need a second process that holds keys or leadership and then dies by SIGKILL:
// the test binary re-executes itself, and Main hands control to the role registered under the
// name the parent asked for.

const childEnv = "KVOP_BACKENDTEST_CHILD"

// ChildSpec is what a child process gets from its parent.
type ChildSpec struct {
	Role    string            `json:"role"`
	Backend kvstore.Backend   `json:"backend"`
	Addrs   []string          `json:"addrs"`
	Timeout time.Duration     `json:"timeout"`
	Session time.Duration     `json:"session"`
	Args    map[string]string `json:"args"`
}

// Open opens the store the parent described.
func (s ChildSpec) Open(ctx context.Context) (kvstore.Store, error) {
	return kvstore.New(ctx, s.Backend, s.Addrs, &kvstore.Config{ConnectionTimeout: s.Timeout, SessionTimeout: s.Session})
}

var (
	rolesMu sync.Mutex
	roles   = map[string]func(spec ChildSpec, out io.Writer) error{}
)

// RegisterChildRole makes role runnable in a child process (call it from an init or TestMain
// before Main). The role writes lines to out (the parent reads them with Child.WaitLine) and
// normally blocks until killed; returning ends the child (exit 0, or 1 with the error).
func RegisterChildRole(role string, run func(spec ChildSpec, out io.Writer) error) {
	rolesMu.Lock()
	defer rolesMu.Unlock()
	roles[role] = run
}

// RunChildIfRequested runs the child role when this process is a child (and exits); in the
// parent it returns at once.
func RunChildIfRequested() {
	raw := os.Getenv(childEnv)
	if raw == "" {
		return
	}
	var spec ChildSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "backendtest child:", err)
		os.Exit(2)
	}
	rolesMu.Lock()
	run := roles[spec.Role]
	rolesMu.Unlock()
	if run == nil {
		fmt.Fprintf(os.Stderr, "backendtest child: unknown role %q\n", spec.Role)
		os.Exit(2)
	}
	if err := run(spec, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "backendtest child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Child is a running child process.
type Child struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

// StartChild starts the test binary as a child running role against tg's store.
func StartChild(t testing.TB, tg *Target, role string, args map[string]string) *Child {
	t.Helper()
	spec := ChildSpec{Role: role, Backend: tg.Backend, Addrs: tg.Addrs, Timeout: tg.Config.ConnectionTimeout,
		Session: tg.Config.SessionTimeout, Args: args}
	raw, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting child %s: %v", role, err)
	}
	c := &Child{cmd: cmd, lines: make(chan string, 64), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	go func() { _ = cmd.Wait(); close(c.done) }()
	t.Cleanup(c.Kill)
	return c
}

// WaitLine waits for an output line that starts with prefix and returns it.
func (c *Child) WaitLine(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited before printing %q", prefix)
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-deadline:
			t.Fatalf("child printed no %q line within %s", prefix, timeout)
		}
	}
}

// Kill ends the child with SIGKILL, as a crash would, and waits until it is gone.
func (c *Child) Kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}
