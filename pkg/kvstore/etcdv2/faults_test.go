package etcdv2_test

import (
	"context"
	"net"
	"testing"
	"time"

	client "go.etcd.io/etcd/client/v2"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// Watches outlive a server crash: v2 keeps its event history in memory only, so after the
// restart they read again and go on; a change made while they were reconnecting is not lost.
func TestWatchSurvivesRestart(t *testing.T) {
	srv := testservers.EtcdV2(t)
	st := open(t, srv.Endpoints(), &kvstore.Config{ConnectionTimeout: 2 * time.Second})
	ctx := ctxT(t)
	mustPut(t, st, "r/k", "1", nil)
	w, err := st.Watch(ctx, "r/k")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := st.WatchTree(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	next(t, w, 5*time.Second, "Watch first")
	next(t, tree, 5*time.Second, "WatchTree first")

	srv.Kill()
	_, err = st.Get(ctx, "r/k")
	wantErr(t, err, kvstore.ErrNotReachable, "Get while the server is down")
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// Written by another client right after the restart, maybe before the watches reconnect.
	other := open(t, srv.Endpoints(), nil)
	mustPut(t, other, "r/k", "2", nil)
	if ev := next(t, w, 10*time.Second, "Watch after restart"); ev == nil || string(ev.Value) != "2" {
		t.Errorf("Watch after restart = %+v, want r/k=2", ev)
	}
	if ev := next(t, tree, 10*time.Second, "WatchTree after restart"); len(ev) != 1 || string(ev[0].Value) != "2" {
		t.Errorf("WatchTree after restart = %+v, want [r/k=2]", ev)
	}
	// And they keep working.
	mustPut(t, other, "r/k", "3", nil)
	if ev := next(t, w, 10*time.Second, "Watch later"); ev == nil || string(ev.Value) != "3" {
		t.Errorf("Watch later = %+v, want r/k=3", ev)
	}
}

// More than 1000 events (v2's history) between two reads of a slow consumer: the watch sees
// error 401 "event index cleared", reads again and still delivers the latest state.
func TestWatchOutdatedHistory(t *testing.T) {
	srv := testservers.EtcdV2(t)
	st := open(t, srv.Endpoints(), nil)
	ctx := ctxT(t)
	w, err := st.Watch(ctx, "h/k")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, w, 5*time.Second, "first"); ev != nil {
		t.Fatalf("first event = %+v, want nil", ev)
	}
	mustPut(t, st, "h/k", "0", nil) // the watch wakes, reads, and blocks on sending this
	time.Sleep(200 * time.Millisecond)
	kapi := raw(t, srv, "", "")
	for i := range 1100 {
		if _, err := kapi.Set(ctx, "/other", "x", nil); err != nil {
			t.Fatalf("raw Set %d: %v", i, err)
		}
	}
	mustPut(t, st, "h/k", "last", nil)
	for {
		ev := next(t, w, 10*time.Second, "event")
		if ev != nil && string(ev.Value) == "last" {
			break
		}
	}
}

// An address nobody answers on fails Open with ErrNotReachable within ConnectionTimeout.
func TestNotReachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silent := l.Addr().String() // accepts connections (backlog) but never answers
	defer l.Close()
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	for _, addr := range []string{silent, closed} {
		start := time.Now()
		_, err := kvstore.New(t.Context(), kvstore.EtcdV2, []string{addr}, &kvstore.Config{ConnectionTimeout: time.Second})
		wantErr(t, err, kvstore.ErrNotReachable, "New("+addr+")")
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("New(%s) took %s with a 1s ConnectionTimeout", addr, d)
		}
	}

	// A paused server: requests time out with ErrNotReachable, the caller's ctx stays its own.
	srv := testservers.EtcdV2(t)
	st := open(t, srv.Endpoints(), &kvstore.Config{ConnectionTimeout: time.Second})
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	defer srv.Resume()
	_, err = st.Get(t.Context(), "k")
	wantErr(t, err, kvstore.ErrNotReachable, "Get on a paused server")
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = st.Get(ctx, "k")
	wantErr(t, err, context.DeadlineExceeded, "Get with a short ctx on a paused server")
}

// v2 auth: with a root user and the guest role stripped, the right password works, a wrong one
// or none fails with ErrAuthFailed.
func TestAuth(t *testing.T) {
	srv := testservers.EtcdV2(t)
	ctx := ctxT(t)
	c := rawClient(t, srv, "", "")
	if err := client.NewAuthUserAPI(c).AddUser(ctx, "root", "s3cret"); err != nil {
		t.Fatalf("AddUser(root): %v", err)
	}
	if err := client.NewAuthAPI(c).Enable(ctx); err != nil {
		t.Fatalf("auth Enable: %v", err)
	}
	rootc := rawClient(t, srv, "root", "s3cret")
	if _, err := client.NewAuthRoleAPI(rootc).RevokeRoleKV(ctx, "guest", []string{"/*"}, client.ReadWritePermission); err != nil {
		t.Fatalf("revoking the guest role: %v", err)
	}

	st := open(t, srv.Endpoints(), &kvstore.Config{Username: "root", Password: "s3cret"})
	mustPut(t, st, "auth/k", "v", nil)
	if p := mustGet(t, st, "auth/k"); string(p.Value) != "v" {
		t.Errorf("Get = %q", p.Value)
	}
	l, err := st.NewLock(ctx, "auth/lock", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Lock(ctx); err != nil {
		t.Fatalf("Lock with auth: %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatalf("Unlock with auth: %v", err)
	}

	// A user whose role grants only kvop's root directory can do everything.
	if err := client.NewAuthRoleAPI(rootc).AddRole(ctx, "kvop"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.NewAuthRoleAPI(rootc).GrantRoleKV(ctx, "kvop", []string{"/kvop/*"}, client.ReadWritePermission); err != nil {
		t.Fatal(err)
	}
	users := client.NewAuthUserAPI(rootc)
	if err := users.AddUser(ctx, "app", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := users.GrantUser(ctx, "app", []string{"kvop"}); err != nil {
		t.Fatal(err)
	}
	app := open(t, srv.Endpoints(), &kvstore.Config{Username: "app", Password: "pw"})
	mustPut(t, app, "auth/app/k", "v", &kvstore.WriteOptions{TTL: time.Second, KeepAlive: true})
	if l, err := app.List(ctx, "auth"); err != nil || len(l) != 2 {
		t.Errorf("List(auth) as app = %v, %v", l, err)
	}
	tree, err := app.WatchTree(ctx, "auth")
	if err != nil {
		t.Fatal(err)
	}
	next(t, tree, 5*time.Second, "WatchTree as app")
	if err := app.Delete(ctx, "auth/app/k"); err != nil {
		t.Errorf("Delete as app: %v", err)
	}
	if ev := next(t, tree, 5*time.Second, "WatchTree as app after Delete"); len(ev) != 1 {
		t.Errorf("WatchTree as app after Delete = %v", ev)
	}
	if err := app.DeleteTree(ctx, "auth"); err != nil {
		t.Errorf("DeleteTree as app: %v", err)
	}

	for name, cfg := range map[string]*kvstore.Config{
		"wrong password": {Username: "root", Password: "wrong"},
		"unknown user":   {Username: "nobody", Password: "x"},
		"no credentials": nil,
	} {
		_, err := kvstore.New(ctx, kvstore.EtcdV2, srv.Endpoints(), cfg)
		wantErr(t, err, kvstore.ErrAuthFailed, name)
	}
}

// TLS with client certificates (etcd's --client-cert-auth): the right CA and certificate work;
// another CA, or no client certificate, fail with ErrAuthFailed.
func TestTLS(t *testing.T) {
	ts := testservers.TLSForTest(t)
	srv := testservers.EtcdV2(t, testservers.WithTLS(ts))
	ctx := ctxT(t)
	st := open(t, srv.Endpoints(), &kvstore.Config{TLS: ts.ClientConfig()})
	mustPut(t, st, "tls/k", "v", nil)
	w, err := st.Watch(ctx, "tls/k")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, w, 5*time.Second, "Watch over TLS"); ev == nil || string(ev.Value) != "v" {
		t.Errorf("Watch over TLS = %+v", ev)
	}

	other, err := ts.OtherCA()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &kvstore.Config{TLS: other.ClientConfig(), ConnectionTimeout: 2 * time.Second}
	_, err = kvstore.New(ctx, kvstore.EtcdV2, srv.Endpoints(), cfg)
	wantErr(t, err, kvstore.ErrAuthFailed, "another CA")
	cfg = &kvstore.Config{TLS: ts.CAOnlyConfig(), ConnectionTimeout: 2 * time.Second}
	_, err = kvstore.New(ctx, kvstore.EtcdV2, srv.Endpoints(), cfg)
	wantErr(t, err, kvstore.ErrAuthFailed, "no client certificate")
	// Plain HTTP to a TLS port is no answer.
	cfg = &kvstore.Config{ConnectionTimeout: 2 * time.Second}
	_, err = kvstore.New(ctx, kvstore.EtcdV2, srv.Endpoints(), cfg)
	wantErr(t, err, kvstore.ErrNotReachable, "plain HTTP")
}
