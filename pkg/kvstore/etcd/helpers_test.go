package etcd

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

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

// rawClient is a plain etcd client for setting up what kvop must cope with.
func rawClient(t testing.TB, addr string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{"http://" + addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// noLeaks fails t if goroutines started during it still run after its cleanups (stores
// closed, servers stopped): call it first, so that its check runs last.
func noLeaks(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := goleak.Find(before)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines left behind: %v", err)
				return
			}
		}
	})
}
