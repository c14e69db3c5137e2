package zookeeper

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kvop/kvop/pkg/kvstore"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// open opens a store that is closed when the test ends.
func open(t testing.TB, addrs []string, cfg *kvstore.Config) kvstore.Store {
	t.Helper()
	if cfg == nil {
		cfg = &kvstore.Config{SessionTimeout: testSession}
	}
	st, err := kvstore.New(testCtx(t), kvstore.ZooKeeper, addrs, cfg)
	if err != nil {
		t.Fatalf("kvstore.New: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// rawConn is a bare ZooKeeper client, to look at the tree as other tools see it.
func rawConn(t testing.TB, addrs []string) *zk.Conn {
	t.Helper()
	conn, events, err := zk.Connect(addrs, testSession, zk.WithLogInfo(false), zk.WithLogger(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn
			}
		case <-deadline:
			t.Fatal("raw client got no session")
		}
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nextList(t testing.TB, ch <-chan []*kvstore.KVPair) []*kvstore.KVPair {
	t.Helper()
	select {
	case l, ok := <-ch:
		if !ok {
			t.Fatal("WatchTree channel closed")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no WatchTree event within 10s")
	}
	return nil
}

// hasPair reports whether list holds key with value.
func hasPair(list []*kvstore.KVPair, key string, value []byte) bool {
	for _, p := range list {
		if p.Key == key && bytes.Equal(p.Value, value) {
			return true
		}
	}
	return false
}
