package boltdb

import (
	"context"
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kvop/kvop/pkg/kvstore"
)

// TestExpirySurvivesReopen: the deadline lives in the file, so a key that expired while no
// process had it open is gone after reopen, and one that did not is still there with the same
// LastIndex; the sequence continues, so LastIndex is not reused either.
func TestExpirySurvivesReopen(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	path := tempDB(t)
	st := openAt(t, path, nil)
	if err := st.Put(ctx, "short", []byte("s"), &kvstore.WriteOptions{TTL: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "long", []byte("l"), &kvstore.WriteOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "plain", []byte("p"), nil); err != nil {
		t.Fatal(err)
	}
	long, _ := st.Get(ctx, "long")
	plain, _ := st.Get(ctx, "plain")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)

	st = openAt(t, path, nil)
	if _, err := st.Get(ctx, "short"); !errors.Is(err, kvstore.ErrKeyNotFound) {
		t.Fatalf("expired key after reopen: %v", err)
	}
	if p, err := st.Get(ctx, "long"); err != nil || p.LastIndex != long.LastIndex || string(p.Value) != "l" {
		t.Fatalf("live TTL key after reopen: %+v %v", p, err)
	}
	if err := st.Put(ctx, "fresh", nil, nil); err != nil {
		t.Fatal(err)
	}
	if p, _ := st.Get(ctx, "fresh"); p.LastIndex <= plain.LastIndex {
		t.Fatalf("LastIndex %d after reopen does not exceed %d from before", p.LastIndex, plain.LastIndex)
	}
	// The deleted record is physically gone too, not just hidden.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openAt(t, path, nil)
	s := st.(*store)
	var raw []byte
	_ = s.h.db.View(func(tx *bolt.Tx) error { raw = tx.Bucket(s.bucketName).Get([]byte("short")); return nil })
	if raw != nil {
		t.Fatal("expired record still in the file after reopen")
	}
}

// TestReaperRunsForKeysFromBeforeOpen: a TTL key written by an earlier process is reaped (with
// a watch event) by the next one at its deadline.
func TestReaperRunsForKeysFromBeforeOpen(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	path := tempDB(t)
	st := openAt(t, path, nil)
	if err := st.Put(ctx, "k", []byte("v"), &kvstore.WriteOptions{TTL: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	st = openAt(t, path, nil)
	w, err := st.Watch(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := recvPair(t, w, time.Second); p == nil {
		t.Fatal("key from before reopen not visible")
	}
	if p, _ := recvPair(t, w, 2*time.Second); p != nil {
		t.Fatalf("want nil on expiry, got %+v", p)
	}
}
