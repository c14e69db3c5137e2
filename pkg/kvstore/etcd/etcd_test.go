package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// The tests here are about etcd itself: connections, auth, restarts and leases.

// closedPort returns an address where nothing listens.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentServer accepts connections and never answers, as a hung server would.
func silentServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return l.Addr().String()
}

func TestOpenUnreachable(t *testing.T) {
	const timeout = 500 * time.Millisecond
	for name, addr := range map[string]string{
		"connection refused": closedPort(t),
		"silent server":      silentServer(t),
	} {
		for _, cfg := range []kvstore.Config{
			{ConnectionTimeout: timeout},
			{ConnectionTimeout: timeout, Username: "u", Password: "p"}, // authenticates first
		} {
			t.Run(name, func(t *testing.T) {
				start := time.Now()
				st, err := kvstore.New(t.Context(), kvstore.Etcd, []string{addr}, &cfg)
				took := time.Since(start)
				if err == nil {
					st.Close()
					t.Fatal("Open succeeded")
				}
				if !errors.Is(err, kvstore.ErrNotReachable) {
					t.Fatalf("Open: %v, want ErrNotReachable", err)
				}
				if took > timeout+500*time.Millisecond {
					t.Fatalf("Open took %s with ConnectionTimeout %s", took, timeout)
				}
				t.Logf("after %s: %v", took.Round(time.Millisecond), err)
			})
		}
	}
}

// A server that goes away after Open: requests fail with ErrNotReachable within the timeout.
func TestRequestUnreachable(t *testing.T) {
	noLeaks(t)
	srv := testservers.Etcd(t)
	const timeout = 500 * time.Millisecond
	st := openStore(t, srv.Endpoints(), &kvstore.Config{ConnectionTimeout: timeout})
	srv.Kill()
	start := time.Now()
	_, err := st.Get(t.Context(), "k")
	if !errors.Is(err, kvstore.ErrNotReachable) {
		t.Fatalf("Get: %v, want ErrNotReachable", err)
	}
	if took := time.Since(start); took > timeout+500*time.Millisecond {
		t.Fatalf("Get took %s", took)
	}
	// The caller's own deadline stays the caller's.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := st.Put(ctx, "k", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put with a short ctx: %v", err)
	}
}

func TestAuth(t *testing.T) {
	srv := testservers.Etcd(t) // a server of its own: auth changes it for good
	ctx := t.Context()
	cli := rawClient(t, srv.Addr)
	for _, step := range []func() error{
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, "reader", "readerpw"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("setting up auth: %v", err)
		}
	}
	cfg := func(user, pw string) *kvstore.Config {
		return &kvstore.Config{ConnectionTimeout: 2 * time.Second, Username: user, Password: pw}
	}

	st := openStore(t, srv.Endpoints(), cfg("root", "rootpw"))
	if err := st.Put(ctx, "secret", []byte("x"), nil); err != nil {
		t.Fatalf("Put as root: %v", err)
	}
	if p, err := st.Get(ctx, "secret"); err != nil || string(p.Value) != "x" {
		t.Fatalf("Get as root: %v, %v", p, err)
	}

	for name, c := range map[string]*kvstore.Config{
		"wrong password": cfg("root", "nope"),
		"unknown user":   cfg("nobody", "nope"),
		"no credentials": cfg("", ""),
	} {
		t.Run(name, func(t *testing.T) {
			st, err := kvstore.New(ctx, kvstore.Etcd, srv.Endpoints(), c)
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, kvstore.ErrAuthFailed) {
				t.Fatalf("Open: %v, want ErrAuthFailed", err)
			}
			t.Log(err)
		})
	}

	// A valid user without rights on a key opens fine (Open asks for no key) and is refused
	// the key with ErrAuthFailed.
	reader := openStore(t, srv.Endpoints(), cfg("reader", "readerpw"))
	if _, err := reader.Get(ctx, "secret"); !errors.Is(err, kvstore.ErrAuthFailed) {
		t.Fatalf("Get without permission: %v, want ErrAuthFailed", err)
	}
}

// Mutual TLS: the right CA and client certificate work; a server certificate the client does
// not trust, or a missing client certificate, is ErrAuthFailed; TLS against a plain-text
// server and plain text against a TLS server find no server.
func TestTLS(t *testing.T) {
	ts := testservers.TLSForTest(t)
	srv := testservers.Etcd(t, testservers.WithTLS(ts))
	other, err := ts.OtherCA()
	if err != nil {
		t.Fatal(err)
	}
	const timeout = time.Second
	st := openStore(t, srv.Endpoints(), &kvstore.Config{ConnectionTimeout: timeout, TLS: ts.ClientConfig()})
	if err := st.Put(t.Context(), "k", []byte("v"), nil); err != nil {
		t.Fatalf("Put over TLS: %v", err)
	}

	plain := testservers.Etcd(t)
	for _, c := range []struct {
		name  string
		addrs []string
		tls   *tls.Config
		want  error
	}{
		{"untrusted server certificate", srv.Endpoints(), other.ClientConfig(), kvstore.ErrAuthFailed},
		{"no client certificate", srv.Endpoints(), ts.CAOnlyConfig(), kvstore.ErrAuthFailed},
		{"plain text to a TLS server", srv.Endpoints(), nil, kvstore.ErrNotReachable},
		{"TLS to a plain-text server", plain.Endpoints(), ts.ClientConfig(), kvstore.ErrNotReachable},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			st, err := kvstore.New(t.Context(), kvstore.Etcd, c.addrs, &kvstore.Config{ConnectionTimeout: timeout, TLS: c.tls})
			took := time.Since(start)
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Open: %v, want %v", err, c.want)
			}
			if took > timeout+500*time.Millisecond {
				t.Fatalf("Open took %s with ConnectionTimeout %s", took, timeout)
			}
			t.Logf("after %s: %v", took.Round(time.Millisecond), err)
		})
	}
}

// Watches go on across a server crash and restart, and what changes right after the restart
// is delivered.
func TestWatchAcrossRestart(t *testing.T) {
	noLeaks(t)
	srv := testservers.Etcd(t)
	ctx := t.Context()
	st := openStore(t, srv.Endpoints(), &kvstore.Config{ConnectionTimeout: 2 * time.Second})
	if err := st.Put(ctx, "r/k", []byte("before"), nil); err != nil {
		t.Fatal(err)
	}
	w, err := st.Watch(ctx, "r/k")
	if err != nil {
		t.Fatal(err)
	}
	wt, err := st.WatchTree(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	<-w
	<-wt

	srv.Kill()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	cli := rawClient(t, srv.Addr)
	if _, err := cli.Put(ctx, "r/k", "after"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "r/k2", "new"); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(15 * time.Second)
	for {
		select {
		case p := <-w:
			if p != nil && string(p.Value) == "after" {
				w = nil
			}
		case l := <-wt:
			if len(l) == 2 && string(l[0].Value) == "after" && l[1].Key == "r/k2" {
				wt = nil
			}
		case <-deadline:
			t.Fatalf("changes after the restart not delivered (watch done: %v, tree done: %v)", w == nil, wt == nil)
		}
		if w == nil && wt == nil {
			return
		}
	}
}

// When the client cannot resume a watch because the history it needs was compacted, the
// watch re-reads and sends the current state.
func TestWatchAfterCompaction(t *testing.T) {
	srv := testservers.Etcd(t)
	ctx := t.Context()
	st := openStore(t, srv.Endpoints(), nil).(*Store)
	cli := rawClient(t, srv.Addr)
	first, _ := cli.Put(ctx, "c/k", "1")
	_, _ = cli.Put(ctx, "c/k", "2")
	last, _ := cli.Put(ctx, "c/k", "3")
	if _, err := cli.Compact(ctx, last.Header.Revision); err != nil {
		t.Fatal(err)
	}
	// Follow from before the compaction, as a watch that was disconnected meanwhile would.
	resynced := make(chan int64, 1)
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st.follow(fctx, "c/k", false, first.Header.Revision,
		func([]*clientv3.Event) bool { t.Error("events from compacted history"); return false },
		func(ctx context.Context) (int64, bool, error) {
			_, rev, err := st.get(ctx, "c/k")
			resynced <- rev
			return rev, false, err
		})
	select {
	case rev := <-resynced:
		if rev != last.Header.Revision {
			t.Fatalf("resync read revision %d, want %d", rev, last.Header.Revision)
		}
	default:
		t.Fatal("follow returned without resyncing")
	}
}

// A holder whose server stops answering for longer than the lock's TTL loses the lock: its
// lease may have expired, and another client may hold the lock by now.
func TestLockLostWhenServerPaused(t *testing.T) {
	noLeaks(t)
	srv := testservers.Etcd(t)
	ctx := t.Context()
	st := openStore(t, srv.Endpoints(), &kvstore.Config{ConnectionTimeout: time.Second})
	const ttl = 2 * time.Second
	l, _ := st.NewLock(ctx, "paused", &kvstore.LockOptions{TTL: ttl})
	lost, err := l.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	defer func() { _ = srv.Resume() }()
	select {
	case <-lost:
		t.Logf("lost %s after the pause", time.Since(paused).Round(time.Millisecond))
	case <-time.After(kvstore.TTLBound(kvstore.Etcd, ttl, 0) + 2*time.Second):
		t.Fatal("lock not lost while the server was paused past the TTL")
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatalf("Unlock after the loss: %v", err)
	}
	// The store recovers: the lock can be taken again.
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := l.Lock(lctx); err != nil {
		t.Fatalf("Lock after the server came back: %v", err)
	}
}
