package etcdv2_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// libkv's etcd v2 lock let two clients hold one lock (docker/libkv#186). Here several clients
// fight over one lock, with short TTLs so that refreshes and hand-overs interleave, and each
// holder checks that nobody else is inside.
func TestLockMutualExclusion(t *testing.T) {
	srv := testservers.EtcdV2(t)
	ctx := ctxT(t)
	const clients, rounds = 4, 8
	var inside, max atomic.Int32
	var wg sync.WaitGroup
	for c := range clients {
		st := open(t, srv.Endpoints(), nil)
		wg.Go(func() {
			l, err := st.NewLock(ctx, "mx/lock", &kvstore.LockOptions{Value: []byte{byte('a' + c)}, TTL: time.Second})
			if err != nil {
				t.Error(err)
				return
			}
			for range rounds {
				lost, err := l.Lock(ctx)
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				n := inside.Add(1)
				if n > max.Load() {
					max.Store(n)
				}
				if p, err := st.Get(ctx, "mx/lock"); err != nil || p.Value[0] != byte('a'+c) {
					t.Errorf("Get(lock) while held by %c = %+v, %v", 'a'+c, p, err)
				}
				time.Sleep(50 * time.Millisecond)
				select {
				case <-lost:
					t.Errorf("client %d lost the lock while holding it", c)
				default:
				}
				inside.Add(-1)
				if err := l.Unlock(ctx); err != nil {
					t.Errorf("Unlock: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if m := max.Load(); m != 1 {
		t.Errorf("%d holders at once", m)
	}
}

// A held lock is refreshed without moving its LastIndex; Unlock wakes a waiter at once; a lock
// whose key is deleted behind the holder's back is lost at once.
func TestLockRefreshWakeAndLoss(t *testing.T) {
	srv := testservers.EtcdV2(t)
	ctx := ctxT(t)
	a, b := open(t, srv.Endpoints(), nil), open(t, srv.Endpoints(), nil)
	la, _ := a.NewLock(ctx, "lk", &kvstore.LockOptions{Value: []byte("a"), TTL: time.Second})
	lb, _ := b.NewLock(ctx, "lk", &kvstore.LockOptions{Value: []byte("b"), TTL: time.Second})
	wantErr(t, la.Unlock(ctx), kvstore.ErrNotLocked, "Unlock before Lock")

	lostA, err := la.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := mustGet(t, b, "lk")
	time.Sleep(2500 * time.Millisecond) // several refreshes, past the TTL
	if p := mustGet(t, b, "lk"); p.LastIndex != first.LastIndex || string(p.Value) != "a" {
		t.Errorf("Get(lock) after refreshes = %+v, want %+v", p, first)
	}

	got := make(chan time.Time, 1)
	go func() {
		if _, err := lb.Lock(ctx); err != nil {
			t.Errorf("b.Lock: %v", err)
		}
		got <- time.Now()
	}()
	time.Sleep(300 * time.Millisecond)
	unlocked := time.Now()
	if err := la.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lostA:
	default:
		t.Error("lost channel still open after Unlock")
	}
	select {
	case at := <-got:
		if d := at.Sub(unlocked); d > time.Second {
			t.Errorf("waiter took %s to take over after Unlock", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter did not get the lock after Unlock")
	}

	// Deleting the key behind b's back loses b the lock, well before any TTL.
	lostB, _ := lb.Lock(ctx) // already held: the same channel
	if err := a.Delete(ctx, "lk"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lostB:
	case <-time.After(time.Second):
		t.Fatal("lock not lost after its key was deleted")
	}
	if err := lb.Unlock(ctx); err != nil {
		t.Errorf("Unlock after loss: %v", err)
	}
	// And it can be taken again.
	if _, err := la.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	// Close releases it: a waiter elsewhere gets it promptly.
	go func() {
		time.Sleep(200 * time.Millisecond)
		a.Close()
	}()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := lb.Lock(wctx); err != nil {
		t.Fatalf("Lock after the holder closed its store: %v", err)
	}
	if err := lb.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// A waiting Lock returns the caller's ctx error; Close ends a waiting Lock with ErrClosed, and
// every other call after Close fails with ErrClosed.
func TestLockWaitEndsAndClose(t *testing.T) {
	srv := testservers.EtcdV2(t)
	ctx := ctxT(t)
	a := open(t, srv.Endpoints(), nil)
	b, err := kvstore.New(ctx, kvstore.EtcdV2, srv.Endpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	la, _ := a.NewLock(ctx, "w", nil)
	lb, _ := b.NewLock(ctx, "w", nil)
	if _, err := la.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = lb.Lock(short)
	wantErr(t, err, context.DeadlineExceeded, "Lock with a short ctx")

	done := make(chan error, 1)
	go func() { _, err := lb.Lock(ctx); done <- err }()
	time.Sleep(200 * time.Millisecond)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		wantErr(t, err, kvstore.ErrClosed, "waiting Lock when the store closes")
	case <-time.After(5 * time.Second):
		t.Fatal("waiting Lock did not end on Close")
	}
	_, err = b.Get(ctx, "w")
	wantErr(t, err, kvstore.ErrClosed, "Get after Close")
	_, err = b.Watch(ctx, "w")
	wantErr(t, err, kvstore.ErrClosed, "Watch after Close")
	if err := b.Close(); err != nil && !errors.Is(err, kvstore.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}
