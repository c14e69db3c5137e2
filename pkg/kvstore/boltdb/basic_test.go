package boltdb

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

// The conformance suite covers the contract; these are quick checks of this backend's own
// mechanics (header, sequence, reaper, keep-alive) that also run when the suite is skipped
// with -run.

func TestPutGetListAtomic(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	st := openAt(t, tempDB(t), nil)
	if err := st.Put(ctx, "/a/b/", []byte("v1"), nil); err != nil {
		t.Fatal(err)
	}
	p, err := st.Get(ctx, "a/b")
	if err != nil || p.Key != "a/b" || string(p.Value) != "v1" || p.LastIndex == 0 {
		t.Fatalf("Get = %+v, %v", p, err)
	}
	if err := st.Put(ctx, "a/empty", nil, nil); err != nil {
		t.Fatal(err)
	}
	if p, err := st.Get(ctx, "a/empty"); err != nil || p.Value == nil || len(p.Value) != 0 {
		t.Fatalf("empty value: %+v, %v", p, err)
	}
	if _, err := st.Get(ctx, "a"); !errors.Is(err, kvstore.ErrKeyNotFound) {
		t.Fatalf("parent path Get: %v", err)
	}
	_ = st.Put(ctx, "a", []byte("dir value"), nil)
	_ = st.Put(ctx, "a/c/d", []byte("deep"), nil)
	_ = st.Put(ctx, "ab", []byte("sibling"), nil)
	l, err := st.List(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range l {
		keys = append(keys, p.Key)
	}
	if want := "[a/b a/c/d a/empty]"; fmtKeys(keys) != want {
		t.Fatalf("List(a) = %v, want %s", keys, want)
	}
	if _, err := st.List(ctx, "nothing"); !errors.Is(err, kvstore.ErrKeyNotFound) {
		t.Fatalf("List of empty dir: %v", err)
	}

	// Compare-and-swap, with LastIndex never reused after delete and re-create.
	old, _ := st.Get(ctx, "a/b")
	if _, _, err := st.AtomicPut(ctx, "a/b", []byte("x"), nil, nil); !errors.Is(err, kvstore.ErrKeyExists) {
		t.Fatalf("AtomicPut(nil) on present key: %v", err)
	}
	ok, np, err := st.AtomicPut(ctx, "a/b", []byte("v2"), old, nil)
	if !ok || err != nil || np.LastIndex <= old.LastIndex || string(np.Value) != "v2" {
		t.Fatalf("AtomicPut = %v %+v %v", ok, np, err)
	}
	if _, _, err := st.AtomicPut(ctx, "a/b", []byte("v3"), old, nil); !errors.Is(err, kvstore.ErrKeyModified) {
		t.Fatalf("stale AtomicPut: %v", err)
	}
	if _, err := st.AtomicDelete(ctx, "a/b", nil); !errors.Is(err, kvstore.ErrPreviousNotSpecified) {
		t.Fatalf("AtomicDelete(nil): %v", err)
	}
	if ok, err := st.AtomicDelete(ctx, "a/b", np); !ok || err != nil {
		t.Fatalf("AtomicDelete: %v %v", ok, err)
	}
	if _, err := st.AtomicDelete(ctx, "a/b", np); !errors.Is(err, kvstore.ErrKeyNotFound) {
		t.Fatalf("AtomicDelete of absent key: %v", err)
	}
	ok, again, err := st.AtomicPut(ctx, "a/b", []byte("v4"), nil, nil)
	if !ok || err != nil || again.LastIndex <= np.LastIndex {
		t.Fatalf("re-create: %v %+v %v (previous index %d)", ok, again, err, np.LastIndex)
	}

	if err := st.DeleteTree(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.List(ctx, "a"); !errors.Is(err, kvstore.ErrKeyNotFound) {
		t.Fatalf("List after DeleteTree: %v", err)
	}
	if p, err := st.Get(ctx, "a"); err != nil || string(p.Value) != "dir value" {
		t.Fatalf("DeleteTree(a) touched a itself: %+v %v", p, err)
	}

	if _, err := st.Get(ctx, "/"); !errors.Is(err, kvstore.ErrInvalidKey) {
		t.Fatalf("Get(/): %v", err)
	}
	var kerr *kvstore.Error
	if _, err := st.Get(ctx, "missing"); !errors.As(err, &kerr) || kerr.Backend != kvstore.BoltDB || kerr.Key != "missing" {
		t.Fatalf("error without context: %#v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "a"); !errors.Is(err, kvstore.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}

func fmtKeys(keys []string) string {
	s := "["
	for i, k := range keys {
		if i > 0 {
			s += " "
		}
		s += k
	}
	return s + "]"
}

// TestTTLReaperAndKeepAlive: an expired key is invisible at once and reaped with a watch event;
// a kept-alive key outlives its TTL without new LastIndex or events, and expires after Close.
func TestTTLReaperAndKeepAlive(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	path := tempDB(t)
	st := openAt(t, path, nil)
	ttl := 300 * time.Millisecond

	w, err := st.Watch(ctx, "ttl/short")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := recvPair(t, w, time.Second); p != nil {
		t.Fatalf("first event %+v, want nil", p)
	}
	if err := st.Put(ctx, "ttl/short", []byte("x"), &kvstore.WriteOptions{TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	if p, _ := recvPair(t, w, time.Second); p == nil {
		t.Fatal("no event for the put")
	}
	start := time.Now()
	if p, _ := recvPair(t, w, 2*time.Second); p != nil {
		t.Fatalf("want a nil event on expiry, got %+v", p)
	}
	if since := time.Since(start); since > ttl+500*time.Millisecond {
		t.Fatalf("expiry event %s after the put (TTL %s)", since, ttl)
	}
	if ok, _ := st.Exists(ctx, "ttl/short"); ok {
		t.Fatal("expired key still exists")
	}

	if err := st.Put(ctx, "ttl/kept", []byte("k"), &kvstore.WriteOptions{TTL: ttl, KeepAlive: true}); err != nil {
		t.Fatal(err)
	}
	first, _ := st.Get(ctx, "ttl/kept")
	wk, _ := st.Watch(ctx, "ttl/kept")
	recvPair(t, wk, time.Second)
	time.Sleep(3 * ttl)
	p, err := st.Get(ctx, "ttl/kept")
	if err != nil || p.LastIndex != first.LastIndex {
		t.Fatalf("kept-alive key after 3×TTL: %+v %v (first index %d)", p, err, first.LastIndex)
	}
	select {
	case p := <-wk:
		t.Fatalf("refresh sent a watch event: %+v", p)
	default:
	}
	// A Put without TTL ends the keep-alive and the expiry.
	if err := st.Put(ctx, "ttl/kept", []byte("plain"), nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * ttl)
	if ok, _ := st.Exists(ctx, "ttl/kept"); !ok {
		t.Fatal("key written without TTL expired")
	}

	// After Close the keep-alive stops and the key expires by its deadline.
	other := openAt(t, path, nil)
	if err := st.Put(ctx, "ttl/kept2", []byte("k"), &kvstore.WriteOptions{TTL: ttl, KeepAlive: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, ttl+time.Second, "kept-alive key of a closed store expires", func() bool {
		ok, err := other.Exists(ctx, "ttl/kept2")
		return err == nil && !ok
	})
}

func TestLockBasics(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	st := openAt(t, tempDB(t), nil)
	l1, _ := st.NewLock(ctx, "locks/x", &kvstore.LockOptions{Value: []byte("one"), TTL: 300 * time.Millisecond})
	l2, _ := st.NewLock(ctx, "locks/x", &kvstore.LockOptions{Value: []byte("two"), TTL: 300 * time.Millisecond})
	if err := l1.Unlock(ctx); !errors.Is(err, kvstore.ErrNotLocked) {
		t.Fatalf("Unlock before Lock: %v", err)
	}
	lost1, err := l1.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := st.Get(ctx, "locks/x"); err != nil || string(p.Value) != "one" {
		t.Fatalf("lock key: %+v %v", p, err)
	}
	// Held past several TTLs by the refresher.
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := l2.Lock(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock while held: %v", err)
	}
	got := make(chan error, 1)
	go func() { _, err := l2.Lock(ctx); got <- err }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := l1.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Fatalf("waiter woke %s after Unlock", d)
	}
	select {
	case <-lost1:
	default:
		t.Fatal("lost channel open after Unlock")
	}
	if p, _ := st.Get(ctx, "locks/x"); p == nil || string(p.Value) != "two" {
		t.Fatalf("lock key after hand-over: %+v", p)
	}
	// Deleting the key behind the holder's back loses the lock.
	lost2, _ := l2.Lock(ctx) // already held: same channel
	if err := st.Delete(ctx, "locks/x"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost2:
	case <-time.After(time.Second):
		t.Fatal("lost channel still open after the lock key was deleted")
	}
	if err := l2.Unlock(ctx); err != nil {
		t.Fatalf("Unlock after loss: %v", err)
	}
	if err := l2.Unlock(ctx); !errors.Is(err, kvstore.ErrNotLocked) {
		t.Fatalf("second Unlock: %v", err)
	}
	// Close releases a held lock.
	lost3, err := l1.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost3:
	default:
		t.Fatal("lost channel open after Close")
	}
}
