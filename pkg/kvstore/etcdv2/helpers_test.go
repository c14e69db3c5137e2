package etcdv2_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	client "go.etcd.io/etcd/client/v2"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
	_ "github.com/kvop/kvop/pkg/kvstore/etcdv2"
)

// open opens a store that is closed when the test ends.
func open(t testing.TB, addrs []string, cfg *kvstore.Config) kvstore.Store {
	t.Helper()
	st, err := kvstore.New(t.Context(), kvstore.EtcdV2, addrs, cfg)
	if err != nil {
		t.Fatalf("kvstore.New: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st
}

// raw returns a plain v2 client of srv, to look at the layout behind the store's back.
func raw(t testing.TB, srv *testservers.Server, user, password string) client.KeysAPI {
	t.Helper()
	return client.NewKeysAPI(rawClient(t, srv, user, password))
}

func rawClient(t testing.TB, srv *testservers.Server, user, password string) client.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := client.New(client.Config{
		Endpoints: []string{"http://" + srv.Addr}, Transport: tr,
		Username: user, Password: password, HeaderTimeoutPerRequest: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t testing.TB, st kvstore.Store, key, value string, opts *kvstore.WriteOptions) {
	t.Helper()
	if err := st.Put(ctxT(t), key, []byte(value), opts); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func mustGet(t testing.TB, st kvstore.Store, key string) *kvstore.KVPair {
	t.Helper()
	p, err := st.Get(ctxT(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return p
}

func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}

// next receives one event or fails after d.
func next[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("%s: channel closed", what)
		}
		return v
	case <-time.After(d):
		t.Fatalf("%s: no event within %s", what, d)
	}
	panic("unreachable")
}

// quiet fails if ch delivers anything within d.
func quiet[T any](t testing.TB, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v, ok := <-ch:
		t.Errorf("%s: unexpected event %v (open %v)", what, v, ok)
	case <-time.After(d):
	}
}
