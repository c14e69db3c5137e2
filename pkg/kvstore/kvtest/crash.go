package kvtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

// envWriter marks a test binary started as a writer process; its value is the writerSpec.
const envWriter = "KVTEST_WRITER"

// Lines a writer process prints on stdout.
const (
	writerReady = "KVTEST-WRITER-READY"
	writerError = "KVTEST-WRITER-ERROR"
)

// writerLifetime caps how long a writer lives if nobody kills it (it also exits when its
// parent goes away and its stdin closes).
const writerLifetime = 5 * time.Minute

// minParallel is the -test.parallel that Main sets when the flag is not given: the suite's
// subtests mostly wait on timers, so running more of them at once than there are CPUs makes
// the suite fast without loading the machine.
const minParallel = 24

// Main is the TestMain of a backend's test package:
//
//	func TestMain(m *testing.M) { kvtest.Main(m) }
//
// In a writer process started by the crash subtests it plays the writer and exits; otherwise
// it raises -test.parallel to at least 24 unless the flag was given (most subtests only wait
// for TTLs and locks; see minParallel) and runs the tests. It never returns.
func Main(m *testing.M) {
	if spec := os.Getenv(envWriter); spec != "" {
		os.Exit(runWriter(spec))
	}
	raiseParallel()
	os.Exit(m.Run())
}

func raiseParallel() {
	if !flag.Parsed() {
		flag.Parse()
	}
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if f := flag.Lookup("test.parallel"); f != nil && !given && runtime.GOMAXPROCS(0) < minParallel {
		_ = f.Value.Set(strconv.Itoa(minParallel))
	}
}

// writerSpec is what a writer process gets from its parent. Config carries only the fields
// that survive JSON (not TLS).
type writerSpec struct {
	Backend kvstore.Backend
	Addrs   []string
	Config  writerConfig
	Key     string
	Value   string
	LockKey string
	TTL     time.Duration
}

type writerConfig struct {
	ConnectionTimeout time.Duration
	Username          string
	Password          string
	Token             string
	Bucket            string
	SessionTimeout    time.Duration
}

func newWriterConfig(c *kvstore.Config) writerConfig {
	if c == nil {
		return writerConfig{}
	}
	return writerConfig{c.ConnectionTimeout, c.Username, c.Password, c.Token, c.Bucket, c.SessionTimeout}
}

func (w writerConfig) config() *kvstore.Config {
	return &kvstore.Config{
		ConnectionTimeout: w.ConnectionTimeout, Username: w.Username, Password: w.Password,
		Token: w.Token, Bucket: w.Bucket, SessionTimeout: w.SessionTimeout,
	}
}

// runWriter is the writer process: it writes a KeepAlive key, takes a lock, says so, and then
// waits to be killed — without ever closing its store, as a crashed process would.
func runWriter(specJSON string) int {
	fail := func(format string, args ...any) int {
		fmt.Printf("%s %s\n", writerError, fmt.Sprintf(format, args...))
		return 3
	}
	var spec writerSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fail("bad %s: %v", envWriter, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := kvstore.New(ctx, spec.Backend, spec.Addrs, spec.Config.config())
	if err != nil {
		return fail("New: %v", err)
	}
	if err := st.Put(ctx, spec.Key, []byte(spec.Value), &kvstore.WriteOptions{TTL: spec.TTL, KeepAlive: true}); err != nil {
		return fail("Put: %v", err)
	}
	l, err := st.NewLock(ctx, spec.LockKey, &kvstore.LockOptions{Value: []byte(spec.Value), TTL: spec.TTL})
	if err != nil {
		return fail("NewLock: %v", err)
	}
	if _, err := l.Lock(ctx); err != nil {
		return fail("Lock: %v", err)
	}
	for _, k := range []string{spec.Key, spec.LockKey} {
		if p, err := st.Get(ctx, k); err != nil || string(p.Value) != spec.Value {
			return fail("Get(%q) = %s, %v right after writing it", k, showPair(p), err)
		}
	}
	fmt.Println(writerReady)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0) // the parent is gone
	}()
	time.Sleep(writerLifetime)
	return fail("not killed within %v", writerLifetime)
}

func crashSubtests() []subtest {
	return []subtest{
		{"CrashExpiresKeyAndLock", testCrash},
	}
}

// A process that dies without Close (SIGKILL) loses its KeepAlive key and its lock within the
// TTL bound, measured from its death, for every other client.
func testCrash(e *env) {
	if e.s.Config != nil && e.s.Config.TLS != nil {
		e.Fatalf("Suite.Config.TLS is set, but TLS settings cannot be passed to the writer process; run the suite without TLS")
	}
	ttl, bound := e.ttl(), e.bound(e.ttl())
	addrs := e.s.Addrs
	if e.s.FreshAddrs != nil {
		// The writer must own the store alone (boltdb: one process per file), so the parent
		// opens it only after the kill.
		addrs = e.s.FreshAddrs(e.T)
	}
	spec := writerSpec{
		Backend: e.s.Backend, Addrs: addrs, Config: newWriterConfig(e.s.Config),
		Key: e.key("k"), LockKey: e.key("lock"), Value: "writer", TTL: ttl,
	}
	w := e.startWriter(spec)

	if e.s.FreshAddrs == nil {
		// The store is shared: check from here that the writer holds both, across processes.
		st := e.open()
		e.wantValue(st, spec.Key, []byte("writer"))
		e.wantValue(st, spec.LockKey, []byte("writer"))
		ctx, cancel := context.WithTimeout(e.ctx, waiterStart)
		_, err := e.newLock(st, spec.LockKey, "parent", ttl).Lock(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			e.Fatalf("Lock while the writer process holds the lock = %v, want context.DeadlineExceeded", err)
		}
	}

	killed := w.kill()
	st := e.openAt(addrs)
	e.goneBy(st, spec.Key, killed.Add(bound), "KeepAlive key of a killed writer")
	ctx, cancel := context.WithDeadline(e.ctx, killed.Add(bound+wakeBound))
	defer cancel()
	l := e.newLock(st, spec.LockKey, "parent", ttl)
	if _, err := l.Lock(ctx); err != nil {
		e.Fatalf("Lock after the holder was killed: %v (want the lock within the TTL bound %v of the kill)", err, bound)
	}
	e.Logf("lock taken %v after the kill (bound %v)", time.Since(killed).Round(time.Millisecond), bound)
	e.wantValue(st, spec.LockKey, []byte("parent"))
	e.unlock(l, "parent")
}

// writer is a running writer process.
type writer struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	stderr *lockedBuffer
	once   sync.Once
	at     time.Time
}

// startWriter re-executes the test binary as a writer (Main sees envWriter) and waits until it
// holds its key and lock.
func (e *env) startWriter(spec writerSpec) *writer {
	e.Helper()
	specJSON, err := json.Marshal(spec)
	if err != nil {
		e.Fatalf("writer spec: %v", err)
	}
	// -test.run names this test, so that even a TestMain that forgot Main runs nothing else.
	cmd := exec.Command(os.Args[0], "-test.run="+e.run)
	cmd.Env = append(os.Environ(), envWriter+"="+string(specJSON))
	w := &writer{cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = w.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.Fatalf("writer stdout: %v", err)
	}
	if w.stdin, err = cmd.StdinPipe(); err != nil {
		e.Fatalf("writer stdin: %v", err)
	}
	if err := cmd.Start(); err != nil {
		e.Fatalf("starting the writer process: %v", err)
	}
	e.Cleanup(func() { w.kill() })

	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-lines:
			switch {
			case !ok:
				e.Fatalf("the writer process exited before it was ready: %v\nstderr:\n%s", cmd.Wait(), w.stderr.tail())
			case line == writerReady:
				// Keep draining stdout so that the writer never blocks on it.
				go func() {
					for range lines {
					}
				}()
				return w
			case strings.HasPrefix(line, writerError):
				e.Fatalf("writer process: %s\nstderr:\n%s", line, w.stderr.tail())
			}
		case <-timer.C:
			e.Fatalf("the writer process was not ready within a minute\nstderr:\n%s", w.stderr.tail())
		}
	}
}

// kill SIGKILLs the writer (once) and returns the moment it was killed.
func (w *writer) kill() time.Time {
	w.once.Do(func() {
		w.at = time.Now()
		_ = w.cmd.Process.Kill()
		_ = w.cmd.Wait()
		_ = w.stdin.Close()
	})
	return w.at
}

// lockedBuffer collects a child's stderr (written by os/exec's copier goroutine).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail returns the last few KiB: enough to see why a writer failed.
func (b *lockedBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 4096 {
		s = "..." + s[len(s)-4096:]
	}
	return s
}
