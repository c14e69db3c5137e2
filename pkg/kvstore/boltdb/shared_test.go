package boltdb

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

// TestStoresShareOneHandle: two stores on one file (even spelled differently) share the bbolt
// handle, so each sees the other's writes in its watches and their locks exclude each other;
// the file is closed with the last store.
func TestStoresShareOneHandle(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	path := tempDB(t)
	a := openAt(t, path, nil)
	b := openAt(t, filepath.Join(filepath.Dir(path), ".", filepath.Base(path)), nil)
	if a.(*store).h != b.(*store).h {
		t.Fatal("two stores on one file have different handles")
	}

	w, err := b.Watch(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := b.WatchTree(ctx, "dir")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := recvPair(t, w, time.Second); p != nil {
		t.Fatalf("first event %+v", p)
	}
	if l := <-tree; len(l) != 0 {
		t.Fatalf("first tree event %v", l)
	}
	_ = a.Put(ctx, "k", []byte("from a"), nil)
	if p, _ := recvPair(t, w, time.Second); p == nil || string(p.Value) != "from a" {
		t.Fatalf("watch of b: %+v", p)
	}
	_ = a.Put(ctx, "dir/x", []byte("1"), nil)
	select {
	case l := <-tree:
		if len(l) != 1 || l[0].Key != "dir/x" {
			t.Fatalf("tree event %v", l)
		}
	case <-time.After(time.Second):
		t.Fatal("no tree event")
	}

	la, _ := a.NewLock(ctx, "lock", &kvstore.LockOptions{Value: []byte("a")})
	lb, _ := b.NewLock(ctx, "lock", &kvstore.LockOptions{Value: []byte("b")})
	if _, err := la.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := lb.Lock(short); err == nil {
		t.Fatal("both stores hold the lock")
	}
	got := make(chan error, 1)
	go func() { _, err := lb.Lock(ctx); got <- err }()
	time.Sleep(50 * time.Millisecond)
	// Closing a releases its lock and wakes b's waiter; b's watches go on.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("closing the holder's store did not hand the lock over")
	}
	// b's watch is still running after a closed.
	_ = b.Delete(ctx, "k")
	if p, ok := recvPair(t, w, time.Second); !ok || p != nil {
		t.Fatalf("after delete: %+v (open %v)", p, ok)
	}
	// The last Close ends the watches and closes the file.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := recvPair(t, w, time.Second); ok {
		t.Fatal("watch channel open after Close")
	}
	handlesMu.Lock()
	n := len(handles)
	handlesMu.Unlock()
	if n != 0 {
		t.Fatalf("%d handles open after the last Close", n)
	}
}
