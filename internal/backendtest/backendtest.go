// Package backendtest runs a test against every registered kvstore backend, each on a real
// server, so that tests of the layers above the store (leadership, discovery, the CLI, the
// controllers) cover a new backend as soon as it is added to pkg/kvstore/all.
//
//	func TestMain(m *testing.M) { backendtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		backendtest.Each(t, func(t *testing.T, b *backendtest.Target) {
//			store := b.Open(t)
//			...
//		})
//	}
//
// One server per backend is started lazily and shared by the whole test binary; Main stops them.
package backendtest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
	_ "github.com/kvop/kvop/pkg/kvstore/all" // every backend, so that Each covers each
)

// ZooKeeperSessionTimeout is the session timeout test clients use (the test server allows short
// sessions), so that a dead ZooKeeper client's keys and locks go within seconds.
const ZooKeeperSessionTimeout = 2 * time.Second

// Target is one backend under test, with the server it runs on.
type Target struct {
	Backend kvstore.Backend
	Addrs   []string
	Config  *kvstore.Config
	// Server is the backend's server process (nil for the embedded boltdb), for fault tests.
	Server *testservers.Server
	// SingleProcess: only one process at a time may open the store (boltdb's file lock), so a
	// test with a child process must let the child own it and open it only after the child died.
	SingleProcess bool
}

// Open returns a new client of the target's store, closed when the test ends.
func (tg *Target) Open(t testing.TB) kvstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := kvstore.New(ctx, tg.Backend, tg.Addrs, tg.Config)
	if err != nil {
		t.Fatalf("opening %s store: %v", tg.Backend, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TTLBound is how long a TTL key (or a dead holder's lock) of this target may outlive its ttl.
func (tg *Target) TTLBound(ttl time.Duration) time.Duration {
	if tg.Backend == kvstore.Consul {
		// The test server lowers session_ttl_min to 1s; Consul expires sessions within 2 × TTL.
		return 2*max(ttl, time.Second) + time.Second
	}
	return kvstore.TTLBound(tg.Backend, ttl, tg.Config.SessionTimeout)
}

// Fresh returns a target on a new, empty store of the same backend: for boltdb a new file; for
// the others the same shared server (tests isolate themselves by key prefix).
func (tg *Target) Fresh(t testing.TB) *Target {
	if tg.Backend != kvstore.BoltDB {
		return tg
	}
	cp := *tg
	cp.Addrs = []string{filepath.Join(t.TempDir(), "kvop.db")}
	return &cp
}

// Private returns a target on a server of its own, started for this test: for tests that kill,
// pause or restart the server (the shared one serves parallel tests). For boltdb it is Fresh.
func (tg *Target) Private(t testing.TB) *Target {
	t.Helper()
	var srv *testservers.Server
	switch tg.Backend {
	case kvstore.BoltDB:
		return tg.Fresh(t)
	case kvstore.Etcd:
		srv = testservers.Etcd(t)
	case kvstore.EtcdV2:
		srv = testservers.EtcdV2(t)
	case kvstore.ZooKeeper:
		srv = testservers.ZooKeeper(t)
	case kvstore.Consul:
		srv = testservers.Consul(t)
	default:
		t.Fatalf("backendtest: no test server known for backend %q", tg.Backend)
	}
	cp := *tg
	cp.Server, cp.Addrs = srv, srv.Endpoints()
	return &cp
}

var (
	mu      sync.Mutex
	targets = map[kvstore.Backend]*Target{}
	servers []*testservers.Server
	tmpDir  string
)

// target returns the shared target of backend, starting its server on first use.
func target(t testing.TB, backend kvstore.Backend) *Target {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if tg, ok := targets[backend]; ok {
		return tg
	}
	tg := &Target{Backend: backend, Config: &kvstore.Config{ConnectionTimeout: 5 * time.Second}}
	var srv *testservers.Server
	var err error
	switch backend {
	case kvstore.BoltDB:
		if tmpDir == "" {
			if tmpDir, err = os.MkdirTemp("", "kvop-backendtest-"); err != nil {
				t.Fatal(err)
			}
		}
		tg.Addrs = []string{filepath.Join(tmpDir, "shared.db")}
		tg.SingleProcess = true
	case kvstore.Etcd:
		srv, err = testservers.StartEtcd()
	case kvstore.EtcdV2:
		srv, err = testservers.StartEtcdV2()
	case kvstore.ZooKeeper:
		srv, err = testservers.StartZooKeeper()
		tg.Config.SessionTimeout = ZooKeeperSessionTimeout
	case kvstore.Consul:
		srv, err = testservers.StartConsul()
	default:
		t.Fatalf("backendtest: no test server known for backend %q: add one to internal/backendtest", backend)
	}
	if err != nil {
		t.Fatalf("test server for %s: %v", backend, err)
	}
	if srv != nil {
		servers = append(servers, srv)
		tg.Server, tg.Addrs = srv, srv.Endpoints()
	}
	targets[backend] = tg
	return tg
}

// Each runs fn as a subtest per registered backend (named after it), in parallel with each other.
func Each(t *testing.T, fn func(t *testing.T, tg *Target)) {
	t.Helper()
	for _, b := range kvstore.Backends() {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			fn(t, target(t, b))
		})
	}
}

// Get returns the shared target of one backend (for tests about one backend only).
func Get(t testing.TB, backend kvstore.Backend) *Target { t.Helper(); return target(t, backend) }

// Main runs the tests (or a child role, see Child) and stops the shared servers afterwards.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit, for test mains that start more (call RunChildIfRequested
// first, before starting anything a child must not start).
func Run(m *testing.M) int {
	RunChildIfRequested()
	code := m.Run()
	mu.Lock()
	for _, s := range servers {
		s.Stop()
	}
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
	mu.Unlock()
	return code
}
