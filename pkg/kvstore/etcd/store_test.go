package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// TestStore checks the backend's own mapping onto etcd on one server: what the conformance
// suite checks too, but close to the code, with etcd's revisions and leases in view.
func TestStore(t *testing.T) {
	srv := testservers.Etcd(t)
	ctx := t.Context()

	t.Run("keys and values", func(t *testing.T) {
		st := openStore(t, srv.Endpoints(), nil)
		if err := st.Put(ctx, "/kv/a/b/", []byte{}, nil); err != nil {
			t.Fatal(err)
		}
		p, err := st.Get(ctx, "kv/a/b")
		if err != nil || p.Key != "kv/a/b" || p.Value == nil || len(p.Value) != 0 || p.LastIndex == 0 {
			t.Fatalf("Get = %+v, %v; want empty value at kv/a/b", p, err)
		}
		if _, err := st.Get(ctx, "kv/a"); !errors.Is(err, kvstore.ErrKeyNotFound) {
			t.Fatalf("Get(parent) = %v, want ErrKeyNotFound", err)
		}
		if ok, err := st.Exists(ctx, "kv/a"); ok || err != nil {
			t.Fatalf("Exists(parent) = %v, %v", ok, err)
		}
		if err := st.Put(ctx, "kv/a/b", []byte("2"), nil); err != nil {
			t.Fatal(err)
		}
		q, _ := st.Get(ctx, "kv/a/b")
		if q.LastIndex <= p.LastIndex {
			t.Fatalf("LastIndex did not grow: %d then %d", p.LastIndex, q.LastIndex)
		}
		if err := st.Delete(ctx, "kv/a/b"); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, "kv/a/b"); err != nil {
			t.Fatalf("second Delete: %v", err)
		}
		if _, err := st.Get(ctx, ""); !errors.Is(err, kvstore.ErrInvalidKey) {
			t.Fatalf("Get(\"\") = %v, want ErrInvalidKey", err)
		}
	})

	t.Run("list and delete tree", func(t *testing.T) {
		st := openStore(t, srv.Endpoints(), nil)
		for _, k := range []string{"ls", "ls/b", "ls/a/x", "ls/a", "lsx"} {
			if err := st.Put(ctx, k, []byte(k), nil); err != nil {
				t.Fatal(err)
			}
		}
		got, err := st.List(ctx, "/ls/")
		if err != nil {
			t.Fatal(err)
		}
		if keys := keysOf(got); fmt.Sprint(keys) != "[ls/a ls/a/x ls/b]" {
			t.Fatalf("List = %v", keys)
		}
		if _, err := st.List(ctx, "ls/b"); !errors.Is(err, kvstore.ErrKeyNotFound) {
			t.Fatalf("List(leaf) = %v, want ErrKeyNotFound", err)
		}
		if err := st.DeleteTree(ctx, "ls"); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]bool{"ls": true, "lsx": true, "ls/a": false, "ls/b": false} {
			if ok, _ := st.Exists(ctx, k); ok != want {
				t.Errorf("after DeleteTree, Exists(%s) = %v, want %v", k, ok, want)
			}
		}
	})

	t.Run("atomic", func(t *testing.T) {
		st := openStore(t, srv.Endpoints(), nil)
		ok, p, err := st.AtomicPut(ctx, "cas", []byte("1"), nil, nil)
		if !ok || err != nil {
			t.Fatalf("create: %v %v", ok, err)
		}
		if got, _ := st.Get(ctx, "cas"); got.LastIndex != p.LastIndex {
			t.Fatalf("AtomicPut returned LastIndex %d, Get says %d", p.LastIndex, got.LastIndex)
		}
		if _, _, err := st.AtomicPut(ctx, "cas", []byte("x"), nil, nil); !errors.Is(err, kvstore.ErrKeyExists) {
			t.Fatalf("create again: %v", err)
		}
		_, p2, err := st.AtomicPut(ctx, "cas", []byte("2"), p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.AtomicPut(ctx, "cas", []byte("x"), p, nil); !errors.Is(err, kvstore.ErrKeyModified) {
			t.Fatalf("stale put: %v", err)
		}
		if _, err := st.AtomicDelete(ctx, "cas", p); !errors.Is(err, kvstore.ErrKeyModified) {
			t.Fatalf("stale delete: %v", err)
		}
		if _, err := st.AtomicDelete(ctx, "cas", nil); !errors.Is(err, kvstore.ErrPreviousNotSpecified) {
			t.Fatalf("delete without previous: %v", err)
		}
		if ok, err := st.AtomicDelete(ctx, "cas", p2); !ok || err != nil {
			t.Fatalf("delete: %v %v", ok, err)
		}
		if _, _, err := st.AtomicPut(ctx, "cas", []byte("x"), p2, nil); !errors.Is(err, kvstore.ErrKeyNotFound) {
			t.Fatalf("put on deleted: %v", err)
		}
		if _, _, err := st.AtomicPut(ctx, "cas", []byte("x"), &kvstore.KVPair{Key: "cas"}, nil); !errors.Is(err, kvstore.ErrKeyNotFound) {
			t.Fatalf("put with LastIndex 0 on absent key: %v", err)
		}

		// Racers with the same previous: one wins.
		_, base, _ := st.AtomicPut(ctx, "race", []byte("0"), nil, nil)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				ok, _, err := st.AtomicPut(ctx, "race", []byte{byte(i)}, base, nil)
				if ok {
					wins.Add(1)
				} else if !errors.Is(err, kvstore.ErrKeyModified) {
					t.Errorf("racer: %v", err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d racers won", wins.Load())
		}
	})

	t.Run("watch", func(t *testing.T) {
		st := openStore(t, srv.Endpoints(), nil)
		wctx, cancel := context.WithCancel(ctx)
		ch, err := st.Watch(wctx, "w/k")
		if err != nil {
			t.Fatal(err)
		}
		if p, ok, _ := within(ch, 5*time.Second); !ok || p != nil {
			t.Fatalf("first event %v (ok %v), want nil", p, ok)
		}
		_ = st.Put(ctx, "w/k/child", []byte("no event"), nil)
		_ = st.Put(ctx, "w/k", []byte("1"), nil)
		if p, ok, _ := within(ch, 5*time.Second); !ok || p == nil || string(p.Value) != "1" {
			t.Fatalf("event after Put: %v", p)
		}
		_ = st.Delete(ctx, "w/k")
		if p, ok, open := within(ch, 5*time.Second); !ok || !open || p != nil {
			t.Fatalf("event after Delete: %v (ok %v)", p, ok)
		}
		cancel()
		if _, ok, open := within(ch, 5*time.Second); !ok || open {
			t.Fatal("channel not closed after ctx cancel")
		}
	})

	t.Run("watch tree", func(t *testing.T) {
		st := openStore(t, srv.Endpoints(), nil)
		_ = st.Put(ctx, "wt/a", []byte("a"), nil)
		ch, err := st.WatchTree(ctx, "wt")
		if err != nil {
			t.Fatal(err)
		}
		next := func(want string) {
			t.Helper()
			l, ok, _ := within(ch, 5*time.Second)
			if !ok || fmt.Sprint(keysOf(l)) != want {
				t.Fatalf("WatchTree sent %v (ok %v), want %s", keysOf(l), ok, want)
			}
		}
		next("[wt/a]")
		_ = st.Put(ctx, "wt/c/d", nil, nil)
		next("[wt/a wt/c/d]")
		_ = st.Put(ctx, "wt/b", nil, nil)
		next("[wt/a wt/b wt/c/d]")
		_ = st.DeleteTree(ctx, "wt") // one transaction: one event
		next("[]")
		_ = st.Put(ctx, "wt", nil, nil) // the directory itself is not below it
		_ = st.Put(ctx, "wt/z", nil, nil)
		next("[wt/z]")
	})

	t.Run("ttl and keep-alive", func(t *testing.T) {
		st := openStore(t, srv.Endpoints(), nil)
		ttl := 2 * time.Second
		bound := kvstore.TTLBound(kvstore.Etcd, ttl, 0)
		_ = st.Put(ctx, "ttl/plain", []byte("x"), &kvstore.WriteOptions{TTL: ttl})
		_ = st.Put(ctx, "ttl/kept", []byte("x"), &kvstore.WriteOptions{TTL: ttl, KeepAlive: true})
		_ = st.Put(ctx, "ttl/made-permanent", []byte("x"), &kvstore.WriteOptions{TTL: ttl, KeepAlive: true})
		_ = st.Put(ctx, "ttl/made-permanent", []byte("y"), nil)
		kept, _ := st.Get(ctx, "ttl/kept")
		ch, _ := st.Watch(ctx, "ttl/kept")
		<-ch
		start := time.Now()
		for time.Since(start) < bound+500*time.Millisecond {
			time.Sleep(100 * time.Millisecond)
		}
		if ok, _ := st.Exists(ctx, "ttl/plain"); ok {
			t.Error("TTL key still present after its bound")
		}
		if p, err := st.Get(ctx, "ttl/kept"); err != nil || p.LastIndex != kept.LastIndex {
			t.Errorf("KeepAlive key: %v, %v (LastIndex was %d)", p, err, kept.LastIndex)
		}
		if ok, _ := st.Exists(ctx, "ttl/made-permanent"); !ok {
			t.Error("a Put without TTL did not end the expiry")
		}
		if p, ok, _ := within(ch, 0); ok {
			t.Errorf("a keep-alive refresh sent a watch event: %v", p)
		}
		_ = st.Delete(ctx, "ttl/kept")
		s := st.(*Store)
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.kept) != 0 {
			t.Errorf("leases still kept alive after Delete: %v", s.kept)
		}
	})

	t.Run("lock", func(t *testing.T) {
		a, b := openStore(t, srv.Endpoints(), nil), openStore(t, srv.Endpoints(), nil)
		la, _ := a.NewLock(ctx, "lk", &kvstore.LockOptions{Value: []byte("a"), TTL: 2 * time.Second})
		lb, _ := b.NewLock(ctx, "lk", &kvstore.LockOptions{Value: []byte("b"), TTL: 2 * time.Second})
		if err := lb.Unlock(ctx); !errors.Is(err, kvstore.ErrNotLocked) {
			t.Fatalf("Unlock before Lock: %v", err)
		}
		lostA, err := la.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := b.Get(ctx, "lk"); p == nil || string(p.Value) != "a" {
			t.Fatalf("Get(lock key) = %v, want holder a", p)
		}
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if _, err := lb.Lock(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock while held: %v", err)
		}
		type acquired struct {
			at   time.Time
			lost <-chan struct{}
		}
		got := make(chan acquired, 1)
		go func() {
			lost, err := lb.Lock(ctx)
			if err != nil {
				t.Errorf("waiting Lock: %v", err)
			}
			got <- acquired{time.Now(), lost}
		}()
		time.Sleep(300 * time.Millisecond) // let b wait on its watch
		unlocked := time.Now()
		if err := la.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok, open := within(lostA, 0); !ok || open {
			t.Fatal("lost channel open after Unlock")
		}
		bGot := <-got
		if d := bGot.at.Sub(unlocked); d > time.Second {
			t.Fatalf("waiter woke %s after Unlock", d)
		}
		if _, err := lb.Lock(ctx); err == nil {
			t.Fatal("second Lock of a held Locker succeeded")
		}
		// Deleting the key behind b's back loses b's lock.
		if err := a.Delete(ctx, "lk"); err != nil {
			t.Fatal(err)
		}
		if _, ok, open := within(bGot.lost, 2*time.Second); !ok || open {
			t.Fatal("holder's channel still open after its key was deleted")
		}
		if err := lb.Unlock(ctx); err != nil {
			t.Fatalf("Unlock after loss: %v", err)
		}
		if _, err := la.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		// Close releases a's lock at once.
		_ = a.Close()
		short2, cancel2 := context.WithTimeout(ctx, 2*time.Second)
		defer cancel2()
		if _, err := lb.Lock(short2); err != nil {
			t.Fatalf("Lock after the holder closed: %v", err)
		}
	})

	t.Run("close", func(t *testing.T) {
		st, err := kvstore.New(ctx, kvstore.Etcd, srv.Endpoints(), nil)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := st.Watch(ctx, "cl/k")
		wt, _ := st.WatchTree(ctx, "cl")
		l, _ := st.NewLock(ctx, "cl/lock", nil)
		lost, _ := l.Lock(ctx)
		_ = st.Put(ctx, "cl/kept", nil, &kvstore.WriteOptions{TTL: 2 * time.Second, KeepAlive: true})
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		for name, closed := range map[string]bool{
			"watch":      drained(w),
			"watch tree": drained(wt),
			"lock":       drained(lost),
		} {
			if !closed {
				t.Errorf("%s channel not closed by Close", name)
			}
		}
		if err := st.Put(ctx, "cl/x", nil, nil); !errors.Is(err, kvstore.ErrClosed) {
			t.Errorf("Put after Close: %v", err)
		}
		if _, err := st.Watch(ctx, "cl/x"); !errors.Is(err, kvstore.ErrClosed) {
			t.Errorf("Watch after Close: %v", err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Errorf("Unlock after Close: %v", err)
		}
	})
}

func keysOf(pairs []*kvstore.KVPair) []string {
	keys := make([]string, len(pairs))
	for i, p := range pairs {
		keys[i] = p.Key
	}
	return keys
}

// drained reports whether ch is closed (after whatever it still buffers).
func drained[T any](ch <-chan T) bool {
	for {
		_, ok, open := within(ch, 2*time.Second)
		if !ok {
			return false
		}
		if !open {
			return true
		}
	}
}
