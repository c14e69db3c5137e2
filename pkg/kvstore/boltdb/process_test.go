package boltdb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Environment of the helper process started by startHolder.
const (
	envHolderPath = "KVOP_BOLTDB_HOLDER_PATH" // file the child opens
	envHolderLock = "KVOP_BOLTDB_HOLDER_LOCK" // lock key the child takes, if set
)

// TestHelperHolder is not a test: it is the body of the child process of startHolder. It
// opens the file, optionally takes a lock with a 1s TTL, says "ready", and holds on until its
// stdin closes or it is killed.
func TestHelperHolder(t *testing.T) {
	path := os.Getenv(envHolderPath)
	if path == "" {
		return // only the child process of startHolder does anything here
	}
	ctx := context.Background()
	st, err := kvstore.New(ctx, kvstore.BoltDB, []string{path}, nil)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	if key := os.Getenv(envHolderLock); key != "" {
		l, _ := st.NewLock(ctx, key, &kvstore.LockOptions{Value: []byte("child"), TTL: time.Second})
		if _, err := l.Lock(ctx); err != nil {
			fmt.Println("error:", err)
			os.Exit(3)
		}
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = st.Close()
	os.Exit(0)
}

// startHolder runs the test binary as a child that opens path (and takes lockKey if set), and
// returns once it has.
func startHolder(t *testing.T, path, lockKey string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHolder$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHolderPath+"="+path, envHolderLock+"="+lockKey)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("holder process: %q, %v", line, err)
	}
	return cmd
}

// TestFileHeldByAnotherProcess: a second process gets a fast, clear error instead of hanging
// on bbolt's flock.
func TestFileHeldByAnotherProcess(t *testing.T) {
	path := tempDB(t)
	startHolder(t, path, "")
	start := time.Now()
	st, err := kvstore.New(context.Background(), kvstore.BoltDB, []string{path}, nil)
	took := time.Since(start)
	if err == nil {
		_ = st.Close()
		t.Fatal("opened a file another process holds")
	}
	if !errors.Is(err, ErrFileLocked) || !errors.Is(err, kvstore.ErrNotReachable) {
		t.Fatalf("error does not match ErrFileLocked and ErrNotReachable: %v", err)
	}
	if !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("error does not say what happened: %v", err)
	}
	if took > 2*maxLockWait {
		t.Fatalf("open took %s to fail", took)
	}
	// A shorter ConnectionTimeout waits less.
	start = time.Now()
	_, err = kvstore.New(context.Background(), kvstore.BoltDB, []string{path}, &kvstore.Config{ConnectionTimeout: time.Second})
	if !errors.Is(err, ErrFileLocked) || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("with a 1s ConnectionTimeout: %v after %s", err, time.Since(start))
	}
	t.Logf("error after %s: %v", took, err)
}

// TestKilledHolderLosesLock: a lock holder killed with SIGKILL leaves its lock key behind; the
// next process to open the file gets the lock once the stored deadline passes, within the
// TTL + 1s bound.
func TestKilledHolderLosesLock(t *testing.T) {
	path := tempDB(t)
	cmd := startHolder(t, path, "locks/leader")
	killed := time.Now()
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	ctx := context.Background()
	st := openAt(t, path, nil)
	p, err := st.Get(ctx, "locks/leader")
	if err != nil || string(p.Value) != "child" {
		// The child's last refresh was at most TTL/3 ago; its key must still be there.
		t.Fatalf("dead holder's lock key right after the kill: %+v %v", p, err)
	}
	l, _ := st.NewLock(ctx, "locks/leader", &kvstore.LockOptions{Value: []byte("parent"), TTL: time.Second})
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := l.Lock(lctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(killed); took > kvstore.TTLBound(kvstore.BoltDB, time.Second, 0) {
		t.Fatalf("lock of the killed holder freed %s after the kill", took)
	}
	_ = l.Unlock(ctx)
}
