package consul_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
	_ "github.com/kvop/kvop/pkg/kvstore/consul"
)

func open(t testing.TB, addrs []string, cfg *kvstore.Config) kvstore.Store {
	t.Helper()
	st, err := kvstore.New(context.Background(), kvstore.Consul, addrs, cfg)
	if err != nil {
		t.Fatalf("kvstore.New: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// rawClient talks to the server directly, behind the store's back.
func rawClient(t testing.TB, srv *testservers.Server) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: srv.Addr, HttpClient: &http.Client{Transport: &http.Transport{}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func TestOpenUnreachable(t *testing.T) {
	start := time.Now()
	_, err := kvstore.New(context.Background(), kvstore.Consul, []string{deadAddr(t), deadAddr(t)},
		&kvstore.Config{ConnectionTimeout: time.Second})
	if !errors.Is(err, kvstore.ErrNotReachable) {
		t.Fatalf("New on dead addresses: err = %v, want ErrNotReachable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("New took %s with ConnectionTimeout 1s", d)
	}
	t.Logf("error: %v", err)
}

// TestConsul groups the Consul-specific behaviours that can share one server.
func TestConsul(t *testing.T) {
	srv := testservers.Consul(t)
	ctx := context.Background()

	t.Run("Failover", func(t *testing.T) {
		st := open(t, []string{deadAddr(t), srv.Addr}, &kvstore.Config{ConnectionTimeout: 2 * time.Second})
		if err := st.Put(ctx, "failover/k", []byte("v"), nil); err != nil {
			t.Fatalf("Put through the second address: %v", err)
		}
		p, err := st.Get(ctx, "failover/k")
		if err != nil || string(p.Value) != "v" {
			t.Fatalf("Get = %v, %v", p, err)
		}
	})

	t.Run("SameValueMovesIndex", func(t *testing.T) {
		// Consul skips writes that change nothing; a kvop Put must still be a new version.
		st := open(t, srv.Endpoints(), nil)
		if err := st.Put(ctx, "same/k", []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		p1, _ := st.Get(ctx, "same/k")
		ok, p2, err := st.AtomicPut(ctx, "same/k", []byte("v"), p1, nil)
		if !ok || err != nil || p2.LastIndex <= p1.LastIndex {
			t.Fatalf("AtomicPut same value: ok=%v err=%v pair=%+v (previous index %d)", ok, err, p2, p1.LastIndex)
		}
		ok, _, err = st.AtomicPut(ctx, "same/k", []byte("v"), p1, nil)
		if ok || !errors.Is(err, kvstore.ErrKeyModified) {
			t.Fatalf("second AtomicPut with the stale previous: ok=%v err=%v, want ErrKeyModified", ok, err)
		}
	})

	t.Run("SameValueRacers", func(t *testing.T) {
		st := open(t, srv.Endpoints(), nil)
		if err := st.Put(ctx, "racers/k", []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		prev, _ := st.Get(ctx, "racers/k")
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, _, err := st.AtomicPut(ctx, "racers/k", []byte("v"), prev, nil)
				if err != nil && !errors.Is(err, kvstore.ErrKeyModified) {
					t.Errorf("AtomicPut: %v", err)
				}
				if ok {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d racers writing the same value won, want 1", wins)
		}
	})

	t.Run("TTLBelowFloor", func(t *testing.T) {
		// 200ms is below the server's 1s floor: the store raises it instead of failing.
		st := open(t, srv.Endpoints(), nil)
		start := time.Now()
		if err := st.Put(ctx, "floor/k", []byte("v"), &kvstore.WriteOptions{TTL: 200 * time.Millisecond}); err != nil {
			t.Fatalf("Put with TTL below the floor: %v", err)
		}
		eventually(t, testTTLBound(200*time.Millisecond)+time.Second, "key expires", func() bool {
			ok, err := st.Exists(ctx, "floor/k")
			return err == nil && !ok
		})
		t.Logf("gone after %s", time.Since(start))
	})

	t.Run("PlainPutEndsExpiry", func(t *testing.T) {
		st := open(t, srv.Endpoints(), nil)
		other := open(t, srv.Endpoints(), nil)
		if err := st.Put(ctx, "plain/k", []byte("ttl"), &kvstore.WriteOptions{TTL: time.Second}); err != nil {
			t.Fatal(err)
		}
		// Written by another client, which knows nothing about the session.
		if err := other.Put(ctx, "plain/k", []byte("plain"), nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(testTTLBound(time.Second))
		p, err := other.Get(ctx, "plain/k")
		if err != nil || string(p.Value) != "plain" {
			t.Fatalf("after the TTL bound: %v, %v; a plain Put must end the expiry", p, err)
		}
	})

	t.Run("KeepAliveIsNotAChange", func(t *testing.T) {
		st := open(t, srv.Endpoints(), nil)
		if err := st.Put(ctx, "ka/k", []byte("v"), &kvstore.WriteOptions{TTL: time.Second, KeepAlive: true}); err != nil {
			t.Fatal(err)
		}
		p1, err := st.Get(ctx, "ka/k")
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch, err := st.Watch(wctx, "ka/k")
		if err != nil {
			t.Fatal(err)
		}
		<-ch
		select {
		case ev := <-ch:
			t.Fatalf("event during keep-alive: %+v", ev)
		case <-time.After(testTTLBound(time.Second) + time.Second):
		}
		p2, err := st.Get(ctx, "ka/k")
		if err != nil || p2.LastIndex != p1.LastIndex {
			t.Fatalf("after keep-alive: %+v, %v; LastIndex was %d", p2, err, p1.LastIndex)
		}
	})

	t.Run("LockHandover", func(t *testing.T) {
		a := open(t, srv.Endpoints(), nil)
		b := open(t, srv.Endpoints(), nil)
		la, _ := a.NewLock(ctx, "handover/lock", &kvstore.LockOptions{Value: []byte("a")})
		lb, _ := b.NewLock(ctx, "handover/lock", &kvstore.LockOptions{Value: []byte("b")})
		if _, err := la.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		got := make(chan time.Time, 1)
		go func() {
			if _, err := lb.Lock(ctx); err != nil {
				t.Errorf("b.Lock: %v", err)
			}
			got <- time.Now()
		}()
		time.Sleep(500 * time.Millisecond) // b is waiting now
		released := time.Now()
		if err := la.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case at := <-got:
			d := at.Sub(released)
			t.Logf("handover took %s", d)
			if d > time.Second {
				t.Errorf("handover took %s, want < 1s (a 15s lock-delay?)", d)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("b did not get the lock")
		}
		p, err := b.Get(ctx, "handover/lock")
		if err != nil || string(p.Value) != "b" {
			t.Fatalf("lock key while b holds it: %v, %v", p, err)
		}
		// Relocking after an expiry-style release also must not wait for a lock-delay.
		if err := lb.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := la.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("relock took %s", d)
		}
		_ = la.Unlock(ctx)
	})

	t.Run("HandoverWithoutLockDelay", func(t *testing.T) {
		// Unlock releases the key before it ends the session, so no lock-delay applies and a
		// waiter takes the lock as soon as its blocking query wakes. Destroying the session
		// with the key still held (as Unlock once did) applied the lock-delay, the waiter was
		// refused and slept a 50 ms backoff: every handover took >= 50 ms.
		a, b := open(t, srv.Endpoints(), nil), open(t, srv.Endpoints(), nil)
		la, _ := a.NewLock(ctx, "handover/lock", nil)
		lb, _ := b.NewLock(ctx, "handover/lock", nil)
		if _, err := la.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		holder, waiter := la, lb
		var took []time.Duration
		for range 5 {
			got := make(chan error, 1)
			go func() { _, err := waiter.Lock(ctx); got <- err }()
			time.Sleep(100 * time.Millisecond) // the waiter is in its blocking query
			start := time.Now()
			if err := holder.Unlock(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-got:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the waiter did not get the lock within 10s of Unlock")
			}
			took = append(took, time.Since(start))
			holder, waiter = waiter, holder
		}
		_ = holder.Unlock(ctx)
		slices.Sort(took)
		if median := took[len(took)/2]; median > 30*time.Millisecond {
			t.Errorf("median handover %s (all: %v), want well below the 50 ms backoff", median, took)
		}
	})

	t.Run("SessionInvalidated", func(t *testing.T) {
		st := open(t, srv.Endpoints(), nil)
		raw := rawClient(t, srv)
		l, _ := st.NewLock(ctx, "invalid/lock", &kvstore.LockOptions{Value: []byte("me"), TTL: 5 * time.Second})
		lost, err := l.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(ctx, "invalid/ttl", []byte("v"), &kvstore.WriteOptions{TTL: 5 * time.Second, KeepAlive: true}); err != nil {
			t.Fatal(err)
		}
		// Destroy every session of the node behind the store's back.
		sessions, _, err := raw.Session().Node(testservers.ConsulNode, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, se := range sessions {
			if _, err := raw.Session().Destroy(se.ID, nil); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			t.Fatal("lost channel still open 5s after the session was destroyed")
		}
		if ok, err := st.Exists(ctx, "invalid/ttl"); err != nil || ok {
			t.Fatalf("TTL key after its session was destroyed: exists=%v err=%v", ok, err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatalf("Unlock after a loss: %v, want nil", err)
		}
		// The lock can be taken again.
		if _, err := l.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("LockKeyOverwritten", func(t *testing.T) {
		st := open(t, srv.Endpoints(), nil)
		other := open(t, srv.Endpoints(), nil)
		l, _ := st.NewLock(ctx, "overwritten/lock", nil)
		lost, err := l.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Put(ctx, "overwritten/lock", []byte("mine now"), nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			t.Fatal("lost channel still open after the lock key was overwritten")
		}
		_ = l.Unlock(ctx)
	})

	t.Run("CloseReleasesLock", func(t *testing.T) {
		a := open(t, srv.Endpoints(), nil)
		b := open(t, srv.Endpoints(), nil)
		la, _ := a.NewLock(ctx, "close/lock", nil)
		lost, err := la.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-lost:
		default:
			t.Fatal("lost channel open after Close")
		}
		if err := a.Put(ctx, "close/x", nil, nil); !errors.Is(err, kvstore.ErrClosed) {
			t.Fatalf("Put after Close: %v, want ErrClosed", err)
		}
		lb, _ := b.NewLock(ctx, "close/lock", nil)
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := lb.Lock(lctx); err != nil {
			t.Fatalf("lock of a closed store not free at once: %v", err)
		}
		_ = lb.Unlock(ctx)
	})
}

func TestWatchAcrossRestart(t *testing.T) {
	srv := testservers.Consul(t)
	ctx := context.Background()
	st := open(t, srv.Endpoints(), &kvstore.Config{ConnectionTimeout: 2 * time.Second})
	if err := st.Put(ctx, "restart/k", []byte("before"), nil); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := st.Watch(wctx, "restart/k")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := st.WatchTree(wctx, "restart")
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-ch; ev == nil || string(ev.Value) != "before" {
		t.Fatalf("first event %+v", ev)
	}
	<-tree
	// A lock and a KeepAlive key survive a short outage: sessions are in the raft state, and
	// the holder keeps renewing once the server is back. The TTL is well above a restart's
	// length on a loaded machine: a holder whose renewals fail for a whole TTL rightly reports
	// the lock lost.
	const outageTTL = 8 * time.Second
	l, _ := st.NewLock(ctx, "restart/lock", &kvstore.LockOptions{Value: []byte("me"), TTL: outageTTL})
	lost, err := l.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "restart/ttl", []byte("v"), &kvstore.WriteOptions{TTL: outageTTL, KeepAlive: true}); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	srv.Kill()
	time.Sleep(time.Second)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	outage := time.Since(killed)
	time.Sleep(testTTLBound(outageTTL))
	select {
	case <-lost:
		t.Fatalf("lock lost across a server restart of %s (TTL %s)", outage.Round(time.Millisecond), outageTTL)
	default:
	}
	for _, k := range []string{"restart/lock", "restart/ttl"} {
		if ok, err := st.Exists(ctx, k); err != nil || !ok {
			t.Fatalf("%s after the restart: exists=%v err=%v", k, ok, err)
		}
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "restart/ttl"); err != nil {
		t.Fatal(err)
	}
	// Written behind the store's back right after the restart.
	if _, err := rawClient(t, srv).KV().Put(&api.KVPair{Key: "restart/k", Value: []byte("after")}, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		got  func() []byte
	}{
		{"Watch", func() []byte {
			for {
				select {
				case ev, ok := <-ch:
					if !ok {
						t.Fatal("Watch channel closed across the restart")
					}
					if ev != nil && bytes.Equal(ev.Value, []byte("after")) {
						return ev.Value
					}
				case <-time.After(15 * time.Second):
					return nil
				}
			}
		}},
		{"WatchTree", func() []byte {
			for {
				select {
				case ev, ok := <-tree:
					if !ok {
						t.Fatal("WatchTree channel closed across the restart")
					}
					if len(ev) == 1 && ev[0].Key == "restart/k" && bytes.Equal(ev[0].Value, []byte("after")) {
						return ev[0].Value
					}
				case <-time.After(15 * time.Second):
					return nil
				}
			}
		}},
	} {
		if c.got() == nil {
			t.Fatalf("%s: no event for the write after the restart", c.name)
		}
	}

	// A server that comes back empty: its index went backwards, and the watch must start over
	// rather than wait for the old index (and report the key's disappearance first).
	srv.Kill()
	if err := srv.Wipe(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := rawClient(t, srv).KV().Put(&api.KVPair{Key: "restart/k", Value: []byte("wiped")}, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(15 * time.Second)
	for done := false; !done; {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("Watch channel closed across the wipe")
			}
			done = ev != nil && string(ev.Value) == "wiped"
		case <-deadline:
			t.Fatal("Watch: no event for the write to the wiped server")
		}
	}

	cancel()
	eventually(t, 5*time.Second, "watch channel closes on cancel", func() bool {
		select {
		case _, ok := <-ch:
			return !ok
		default:
			return false
		}
	})
}

func TestACL(t *testing.T) {
	const token = "5d7c1f1e-2a0b-4c3d-9e8f-0a1b2c3d4e5f"
	srv := testservers.Consul(t, testservers.WithConsulACL(token))
	ctx := context.Background()

	st := open(t, srv.Endpoints(), &kvstore.Config{Token: token})
	if err := st.Put(ctx, "acl/k", []byte("v"), &kvstore.WriteOptions{TTL: time.Second}); err != nil {
		t.Fatalf("right token: %v", err)
	}
	if err := st.Put(ctx, "acl/plain", []byte("v"), nil); err != nil {
		t.Fatalf("right token: %v", err)
	}
	l, _ := st.NewLock(ctx, "acl/lock", nil)
	if _, err := l.Lock(ctx); err != nil {
		t.Fatalf("right token, Lock: %v", err)
	}
	_ = l.Unlock(ctx)

	_, err := kvstore.New(ctx, kvstore.Consul, srv.Endpoints(), &kvstore.Config{Token: "00000000-0000-0000-0000-000000000000"})
	if !errors.Is(err, kvstore.ErrAuthFailed) {
		t.Fatalf("unknown token: err = %v, want ErrAuthFailed", err)
	}
	t.Logf("unknown token: %v", err)

	// Anonymous: Open works (no token to check), then ACL default deny refuses. (Not List:
	// Consul answers a list of unreadable keys as an empty directory, ErrKeyNotFound.)
	anon := open(t, srv.Endpoints(), nil)
	for name, f := range map[string]func() error{
		"Put":     func() error { return anon.Put(ctx, "acl/k", []byte("v"), nil) },
		"Get":     func() error { _, err := anon.Get(ctx, "acl/k"); return err },
		"PutTTL":  func() error { return anon.Put(ctx, "acl/k", []byte("v"), &kvstore.WriteOptions{TTL: time.Second}) },
		"CAS":     func() error { _, _, err := anon.AtomicPut(ctx, "acl/new", []byte("v"), nil, nil); return err },
		"Watch":   func() error { _, err := anon.Watch(ctx, "acl/k"); return err },
		"Lock":    func() error { l, _ := anon.NewLock(ctx, "acl/lock2", nil); _, err := l.Lock(ctx); return err },
		"Delete":  func() error { return anon.Delete(ctx, "acl/k") },
		"DelTree": func() error { return anon.DeleteTree(ctx, "acl") },
	} {
		if err := f(); !errors.Is(err, kvstore.ErrAuthFailed) {
			t.Errorf("no token, %s: err = %v, want ErrAuthFailed", name, err)
		}
	}
}

func TestTLS(t *testing.T) {
	ts := testservers.TLSForTest(t)
	srv := testservers.Consul(t, testservers.WithTLS(ts))
	ctx := context.Background()

	st := open(t, srv.Endpoints(), &kvstore.Config{TLS: ts.ClientConfig()})
	if err := st.Put(ctx, "tls/k", []byte("v"), nil); err != nil {
		t.Fatalf("right CA and certificate: %v", err)
	}
	if p, err := st.Get(ctx, "tls/k"); err != nil || string(p.Value) != "v" {
		t.Fatalf("Get over TLS: %v, %v", p, err)
	}
	other, err := ts.OtherCA()
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*kvstore.Config{
		"WrongCA":        {TLS: other.ClientConfig(), ConnectionTimeout: 3 * time.Second},
		"NoClientCert":   {TLS: ts.CAOnlyConfig(), ConnectionTimeout: 3 * time.Second},
		"PlainTextToTLS": {ConnectionTimeout: 3 * time.Second},
	} {
		_, err := kvstore.New(ctx, kvstore.Consul, srv.Endpoints(), cfg)
		if err == nil {
			t.Errorf("%s: New succeeded", name)
			continue
		}
		t.Logf("%s: %v", name, err)
		if name != "PlainTextToTLS" && !errors.Is(err, kvstore.ErrAuthFailed) {
			t.Errorf("%s: err = %v, want ErrAuthFailed", name, err)
		}
	}
}
