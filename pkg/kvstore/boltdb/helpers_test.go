package boltdb

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kvop/kvop/pkg/kvstore"
)

// noLeaks fails t if goroutines started from here on still run once the test and its
// cleanups (which close the stores) are done: Close must end everything a store started.
// Call it first, so that its cleanup runs last.
func noLeaks(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// tempDB returns the path of a new database file in a directory removed after the test.
func tempDB(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "kv.db")
}

// openAt opens a store on path and closes it when the test ends (a second Close is harmless).
func openAt(t testing.TB, path string, cfg *kvstore.Config) kvstore.Store {
	t.Helper()
	st, err := kvstore.New(context.Background(), kvstore.BoltDB, []string{path}, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// recvPair waits for one Watch event.
func recvPair(t *testing.T, ch <-chan *kvstore.KVPair, within time.Duration) (*kvstore.KVPair, bool) {
	t.Helper()
	select {
	case p, ok := <-ch:
		return p, ok
	case <-time.After(within):
		t.Fatalf("no watch event within %s", within)
		return nil, false
	}
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
