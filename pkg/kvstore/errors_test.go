package kvstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

func TestWrapKeepsSentinelAndContext(t *testing.T) {
	cause := errors.New("etcdserver: requested lease not found")
	err := kvstore.Wrap(kvstore.Etcd, "put", "a/b", kvstore.Mark(kvstore.ErrKeyNotFound, cause))
	if !errors.Is(err, kvstore.ErrKeyNotFound) || !errors.Is(err, cause) {
		t.Fatalf("%v: lost the sentinel or the cause", err)
	}
	var e *kvstore.Error
	if !errors.As(err, &e) || e.Backend != kvstore.Etcd || e.Op != "put" || e.Key != "a/b" {
		t.Fatalf("errors.As = %+v", e)
	}
	for _, want := range []string{"etcd", "put", `"a/b"`, "lease not found"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if again := kvstore.Wrap(kvstore.Consul, "get", "x", err); again != err {
		t.Errorf("wrapping twice stacked context: %v", again)
	}
	if kvstore.Wrap(kvstore.Etcd, "get", "k", nil) != nil {
		t.Error("Wrap(nil) is not nil")
	}
	if kvstore.Mark(kvstore.ErrClosed, nil) != kvstore.ErrClosed {
		t.Error("Mark without a cause is not the sentinel")
	}
	store := kvstore.Wrap(kvstore.Consul, "open", "", errors.New("boom"))
	if strings.Contains(store.Error(), `""`) {
		t.Errorf("store-wide error names an empty key: %v", store)
	}
}

type nopStore struct{ kvstore.Store }

func TestRegistry(t *testing.T) {
	const fake kvstore.Backend = "registry-test"
	var got *kvstore.Config
	kvstore.Register(fake, func(_ context.Context, addrs []string, cfg *kvstore.Config) (kvstore.Store, error) {
		got = cfg
		return nopStore{}, nil
	})
	if _, err := kvstore.New(context.Background(), fake, []string{"x:1"}, &kvstore.Config{Username: "u"}); err != nil {
		t.Fatal(err)
	}
	if got.Username != "u" || got.ConnectionTimeout != kvstore.DefaultConnectionTimeout || got.Bucket != kvstore.DefaultBucket ||
		got.SessionTimeout != kvstore.DefaultSessionTimeout {
		t.Fatalf("open got %+v: caller's fields or defaults missing", got)
	}
	if _, err := kvstore.New(context.Background(), fake, nil, nil); err == nil {
		t.Fatal("New without an address succeeded")
	}
	_, err := kvstore.New(context.Background(), "no-such-backend", []string{"x:1"}, nil)
	if !errors.Is(err, kvstore.ErrBackendNotSupported) || !strings.Contains(err.Error(), "import") {
		t.Fatalf("unknown backend: %v; want ErrBackendNotSupported with an import hint", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a second Register of one backend did not panic")
		}
	}()
	kvstore.Register(fake, func(context.Context, []string, *kvstore.Config) (kvstore.Store, error) { return nil, nil })
}

func TestTTLBound(t *testing.T) {
	for _, tc := range []struct {
		b        kvstore.Backend
		ttl, ses time.Duration
		want     time.Duration
	}{
		{kvstore.Etcd, 2 * time.Second, 0, 3 * time.Second},
		{kvstore.BoltDB, 5 * time.Second, 0, 6 * time.Second},
		{kvstore.ZooKeeper, 2 * time.Second, 4 * time.Second, 6 * time.Second},
		{kvstore.ZooKeeper, 2 * time.Second, 0, 12 * time.Second},
		{kvstore.Consul, 2 * time.Second, 0, 21 * time.Second},
		{kvstore.Consul, 30 * time.Second, 0, 61 * time.Second},
	} {
		if got := kvstore.TTLBound(tc.b, tc.ttl, tc.ses); got != tc.want {
			t.Errorf("TTLBound(%s, %s, %s) = %s, want %s", tc.b, tc.ttl, tc.ses, got, tc.want)
		}
	}
}
