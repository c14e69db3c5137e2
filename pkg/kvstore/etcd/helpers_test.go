package etcd

import (
	"context"
	"testing"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

// openStore opens a store on addrs that the test closes when it ends.
func openStore(t testing.TB, addrs []string, cfg *kvstore.Config) kvstore.Store {
	t.Helper()
	st, err := kvstore.New(context.Background(), kvstore.Etcd, addrs, cfg)
	if err != nil {
		t.Fatalf("kvstore.New(etcd, %q): %v", addrs, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// within reports whether ch yields a value or closes within d; it returns the value.
func within[T any](ch <-chan T, d time.Duration) (v T, ok bool, open bool) {
	select { // a ready channel wins over an expired timer
	case v, open = <-ch:
		return v, true, open
	default:
	}
	select {
	case v, open = <-ch:
		return v, true, open
	case <-time.After(d):
		return v, false, false
	}
}
