package cli

import (
	"os/exec"
	"sync"
	"time"
)

// child is one run of elect's CMD.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once CMD has exited and been reaped

	mu        sync.Mutex
	exited    bool
	stopping  bool
	killTimer *time.Timer
}

// startChild starts argv with env and the app's streams, in a process group of its own so
// that stopping it reaches whatever it started too.
func startChild(argv, env []string, a *app) (*child, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = a.stdin, a.stdout, a.stderr
	isolate(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go c.wait()
	return c, nil
}

func (c *child) wait() {
	_ = c.cmd.Wait() // the exit status is read from ProcessState
	c.mu.Lock()
	if c.killTimer != nil {
		c.killTimer.Stop()
	}
	if c.stopping {
		// CMD was told to stop: what it left behind in its group must not outlive it, or
		// it would run on without leadership.
		signalGroup(c.cmd.Process, sigKill)
	}
	c.exited = true
	c.mu.Unlock()
	close(c.done)
}

// stop asks CMD's process group to exit (SIGTERM) and kills it after grace.
func (c *child) stop(grace time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exited || c.stopping {
		return
	}
	c.stopping = true
	signalGroup(c.cmd.Process, sigTerm)
	c.killTimer = time.AfterFunc(grace, c.kill)
}

// kill kills CMD's process group now.
func (c *child) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.exited { // once reaped, its pid (the group's id) may belong to someone else
		c.stopping = true
		signalGroup(c.cmd.Process, sigKill)
	}
}

// stopped reports whether kvop asked CMD to stop (rather than CMD exiting on its own).
func (c *child) stopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

// exitCode is CMD's exit code, 128+N when signal N ended it (as shells report it). Call it
// after done is closed.
func (c *child) exitCode() int { return exitStatus(c.cmd.ProcessState) }
