package testservers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds how long a server may take to answer after it was started.
const startTimeout = 60 * time.Second

// Process is a server running as a child process. Its ports and data directory survive
// Kill and Restart, so a restarted server is the same server.
type Process struct {
	Name    string // e.g. "etcd"
	DataDir string // the server's working and data directory

	bin     string
	args    []string
	env     []string
	ready   func(ctx context.Context) error // returns nil once the server answers
	logPath string
	ownDir  bool // DataDir was created by us and is removed by Stop

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// start launches the process and waits until it answers or startTimeout passes.
func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is already running", p.Name)
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logFile, "\n=== %s: starting %s %q\n", time.Now().Format(time.RFC3339Nano), p.bin, p.args)
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = p.DataDir
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig: a test binary that dies (timeout, SIGKILL) takes its servers with it.
	// Setpgid: a Ctrl-C in the terminal reaches the test, which then stops its servers in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		err := p.ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			p.cmd = nil
			return fmt.Errorf("%s exited before it answered: %v\n%s", p.Name, cmd.ProcessState, p.logTail())
		case <-ctx.Done():
			p.killLocked()
			return fmt.Errorf("%s did not answer within %s (last error: %v)\n%s", p.Name, startTimeout, err, p.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logTail returns the end of the server's log, for error messages.
func (p *Process) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Sprintf("--- last lines of %s ---\n%s", p.logPath, bytes.TrimSpace(b))
}

// Log returns everything the server has printed so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *Process) killLocked() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a paused process must run to die promptly
	_ = p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// Kill stops the server with SIGKILL, as a crash would. Its data stays for Restart.
func (p *Process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killLocked()
}

// Restart starts the server again with the same ports and data directory (killing it first if
// it still runs) and waits until it answers.
func (p *Process) Restart() error {
	p.Kill()
	return p.start()
}

// Wipe removes the server's data (the server must be stopped), so that Restart starts it empty.
func (p *Process) Wipe() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is running: Kill it before Wipe", p.Name)
	}
	entries, err := os.ReadDir(p.DataDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if filepath.Join(p.DataDir, e.Name()) == p.logPath || e.Name() == "config" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(p.DataDir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (p *Process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.Name)
	}
	return p.cmd.Process.Signal(sig)
}

// Pause freezes the server (SIGSTOP): connections stay open but nothing answers. It returns
// once the kernel reports the process stopped: a signal is delivered asynchronously, and a
// loaded machine once let a request through right after kill(2) returned.
func (p *Process) Pause() error {
	if err := p.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	pid := p.Pid()
	deadline := time.Now().Add(5 * time.Second)
	for !allStopped(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not stop within 5s of SIGSTOP", p.Name)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// allStopped reports whether every thread of process pid is stopped (state T in
// /proc/<pid>/task/<tid>/stat: "tid (comm) T ...", the state after the last ')').
func allStopped(pid int) bool {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return false
	}
	for _, f := range stats {
		b, err := os.ReadFile(f)
		i := bytes.LastIndexByte(b, ')')
		if err != nil || i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// Resume lets a paused server run again (SIGCONT).
func (p *Process) Resume() error { return p.signal(syscall.SIGCONT) }

// Pid returns the server's process id, 0 when it is not running.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop ends the server (SIGTERM, then SIGKILL after 5 s) and removes its data directory if
// this package created it.
func (p *Process) Stop() {
	p.mu.Lock()
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			p.cmd = nil
		case <-time.After(5 * time.Second):
			p.killLocked()
		}
	}
	p.mu.Unlock()
	if p.ownDir {
		_ = os.RemoveAll(p.DataDir)
	}
}

// newProcess prepares a process whose data lives in a fresh temporary directory.
func newProcess(name string) (*Process, error) {
	dir, err := os.MkdirTemp("", "kvop-"+name+"-")
	if err != nil {
		return nil, err
	}
	return &Process{Name: name, DataDir: dir, ownDir: true, logPath: filepath.Join(dir, name+".log")}, nil
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// errNotYet marks a readiness probe that should simply be retried.
var errNotYet = errors.New("not ready yet")
