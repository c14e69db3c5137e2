package kvtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

func lockSubtests() []subtest {
	return []subtest{
		{"LockMutualExclusion", testLockMutualExclusion},
		{"LockValueVisible", testLockValueVisible},
		{"UnlockWakesWaiter", testUnlockWakesWaiter},
		{"LockRespectsContext", testLockRespectsContext},
		{"LockGivenUpLeavesNothing", testLockGivenUpLeavesNothing},
		{"LockOutlivesContextAndTTL", testLockOutlivesContext},
		{"LockLostOnKeyDelete", testLockLostOnKeyDelete},
		{"LockLostClosedOnUnlock", testLockLostClosedOnUnlock},
		{"LockLostClosedOnClose", testLockLostClosedOnClose},
		{"UnlockNotLocked", testUnlockNotLocked},
		{"Relock", testRelock},
		{"CloseReleasesLock", testCloseReleasesLock},
		{"LockBookkeepingHidden", testLockBookkeepingHidden},
	}
}

// waiterStart is how long the suite lets a Lock call run before it counts the call as waiting
// (there is nothing to observe that says a Lock call is queued). The lock is held meanwhile,
// so the call must not return: that much is asserted.
const waiterStart = 300 * time.Millisecond

func (e *env) newLock(st kvstore.Store, key, value string, ttl time.Duration) kvstore.Locker {
	e.Helper()
	l, err := st.NewLock(e.ctx, key, &kvstore.LockOptions{Value: []byte(value), TTL: ttl})
	if err != nil {
		e.Fatalf("NewLock(%q): %v", key, err)
	}
	if l == nil {
		e.Fatalf("NewLock(%q) returned a nil Locker and no error", key)
	}
	return l
}

// lock takes a free lock; that must not take long.
func (e *env) lock(l kvstore.Locker, what string) <-chan struct{} {
	e.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, eventTimeout)
	defer cancel()
	lost, err := l.Lock(ctx)
	if err != nil {
		e.Fatalf("%s: Lock: %v", what, err)
	}
	if lost == nil {
		e.Fatalf("%s: Lock returned a nil lost channel", what)
	}
	if isClosed(lost) {
		e.Fatalf("%s: the lost channel is closed right after Lock", what)
	}
	return lost
}

func (e *env) unlock(l kvstore.Locker, what string) {
	e.Helper()
	if err := l.Unlock(e.ctx); err != nil {
		e.Fatalf("%s: Unlock: %v", what, err)
	}
}

// acquisition is the result of a Lock call running in the background.
type acquisition struct {
	lost <-chan struct{}
	err  error
	at   time.Time
}

// lockAsync starts a Lock call bounded by timeout and returns where its result will arrive.
func (e *env) lockAsync(l kvstore.Locker, timeout time.Duration) <-chan acquisition {
	out := make(chan acquisition, 1)
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	go func() {
		defer cancel()
		lost, err := l.Lock(ctx)
		out <- acquisition{lost, err, time.Now()}
	}()
	return out
}

// stillWaiting asserts that a background Lock call has not returned within waiterStart.
func (e *env) stillWaiting(acq <-chan acquisition, what string) {
	e.Helper()
	select {
	case a := <-acq:
		e.Fatalf("%s: Lock returned (%v) while another holder had the lock", what, a.err)
	case <-time.After(waiterStart):
	}
}

// awaitAcquired waits for a background Lock call to succeed by deadline.
func (e *env) awaitAcquired(acq <-chan acquisition, deadline time.Time, what string) acquisition {
	e.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case a := <-acq:
		if a.err != nil {
			e.Fatalf("%s: Lock: %v", what, a.err)
		}
		if a.at.After(deadline) {
			e.Errorf("%s: Lock returned %v after the deadline", what, a.at.Sub(deadline))
		}
		return a
	case <-timer.C:
		e.Fatalf("%s: Lock did not return by the deadline", what)
	}
	return acquisition{}
}

// At most one holder at a time, across two clients and many goroutines, each with a Locker of
// its own; while it holds the lock, every client reads its value at the lock key.
func testLockMutualExclusion(e *env) {
	clients := []kvstore.Store{e.open(), e.open()}
	key := e.key("lock")
	const holders, iterations = 8, 3
	var inside, entered atomic.Int32
	var wg sync.WaitGroup
	for i := range holders {
		wg.Go(func() {
			st, other := clients[i%2], clients[(i+1)%2]
			me := fmt.Sprintf("holder-%d", i)
			l, err := st.NewLock(e.ctx, key, &kvstore.LockOptions{Value: []byte(me), TTL: e.ttl()})
			if err != nil {
				e.Errorf("%s: NewLock: %v", me, err)
				return
			}
			for j := range iterations {
				ctx, cancel := context.WithTimeout(e.ctx, 2*time.Minute)
				lost, err := l.Lock(ctx)
				cancel()
				if err != nil {
					e.Errorf("%s #%d: Lock: %v", me, j, err)
					return
				}
				if n := inside.Add(1); n != 1 {
					e.Errorf("%s #%d: %d holders at once", me, j, n)
				}
				entered.Add(1)
				if p, err := other.Get(e.ctx, key); err != nil || string(p.Value) != me {
					e.Errorf("%s #%d: the other client reads %s, %v at the lock key", me, j, showPair(p), err)
				}
				time.Sleep(5 * time.Millisecond) // a critical section long enough to overlap with a wrong second holder
				if isClosed(lost) {
					e.Errorf("%s #%d: lost the lock while holding it", me, j)
				}
				inside.Add(-1)
				if err := l.Unlock(e.ctx); err != nil {
					e.Errorf("%s #%d: Unlock: %v", me, j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := entered.Load(); n != holders*iterations {
		e.Errorf("%d critical sections ran, want %d", n, holders*iterations)
	}
	e.wantAbsent(clients[0], key)
}

// While held, the lock key holds LockOptions.Value for every client; NewLock alone takes
// nothing, and after Unlock the key is absent.
func testLockValueVisible(e *env) {
	a, b := e.open(), e.open()
	key := e.key("lock")
	l := e.newLock(a, key, "holder identity", e.ttl())
	e.wantAbsent(b, key)
	e.lock(l, "lock")
	e.wantValue(b, key, []byte("holder identity"))
	e.wantValue(a, key, []byte("holder identity"))
	e.unlock(l, "unlock")
	e.wantAbsent(b, key)
	e.wantAbsent(a, key)
	// An empty value is allowed too.
	l2 := e.newLock(b, e.key("empty"), "", e.ttl())
	e.lock(l2, "lock with an empty value")
	if !e.exists(a, e.key("empty")) {
		e.Errorf("lock key with an empty value not present while held")
	}
	e.unlock(l2, "unlock")
}

// Unlock wakes a waiter on another client at once (< 1s): waiting is watch-driven.
func testUnlockWakesWaiter(e *env) {
	a, b := e.open(), e.open()
	key := e.key("lock")
	la, lb := e.newLock(a, key, "a", e.ttl()), e.newLock(b, key, "b", e.ttl())
	holder, waiter := la, lb
	names := map[kvstore.Locker]string{la: "a", lb: "b"}
	e.lock(holder, "first holder")
	for round := range 3 {
		acq := e.lockAsync(waiter, time.Minute)
		e.stillWaiting(acq, fmt.Sprintf("round %d", round))
		start := time.Now()
		e.unlock(holder, "holder")
		got := e.awaitAcquired(acq, start.Add(eventTimeout), fmt.Sprintf("round %d waiter", round))
		if d := got.at.Sub(start); d >= wakeBound {
			e.Errorf("round %d: the waiter got the lock %v after Unlock, want < %v", round, d.Round(time.Millisecond), wakeBound)
		} else {
			e.Logf("round %d: woken %v after Unlock", round, d.Round(time.Millisecond))
		}
		e.wantValue(a, key, []byte(names[waiter]))
		holder, waiter = waiter, holder
	}
	e.unlock(holder, "last holder")
}

// Lock gives up when its ctx ends, with ctx's error, and leaves nothing behind that would
// block later lockers.
func testLockRespectsContext(e *env) {
	a, b := e.open(), e.open()
	key := e.key("lock")
	la, lb := e.newLock(a, key, "a", e.ttl()), e.newLock(b, key, "b", e.ttl())
	e.lock(la, "holder")

	const timeout = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	start := time.Now()
	lost, err := lb.Lock(ctx)
	took := time.Since(start)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || lost != nil {
		e.Errorf("Lock of a held lock with a %v deadline = %v, %v; want nil, context.DeadlineExceeded", timeout, lost, err)
	}
	if took > timeout+lostBound {
		e.Errorf("Lock returned %v after its ctx deadline of %v", took-timeout, timeout)
	}
	ctx, cancel = context.WithCancel(e.ctx)
	cancel()
	if _, err := lb.Lock(ctx); !errors.Is(err, context.Canceled) {
		e.Errorf("Lock of a held lock with a cancelled ctx = %v, want context.Canceled", err)
	}
	e.wantErr(lb.Unlock(e.ctx), kvstore.ErrNotLocked, "Unlock after Lock gave up")
	e.wantValue(b, key, []byte("a"))

	// The abandoned attempts must not stand in the queue: a new waiter is woken at once.
	lc := e.newLock(b, key, "c", e.ttl())
	acq := e.lockAsync(lc, time.Minute)
	e.stillWaiting(acq, "third locker")
	start = time.Now()
	e.unlock(la, "holder")
	got := e.awaitAcquired(acq, start.Add(eventTimeout), "third locker after the abandoned attempts")
	if d := got.at.Sub(start); d >= wakeBound {
		e.Errorf("the waiter got the lock %v after Unlock, want < %v (do abandoned Lock calls stay queued?)", d.Round(time.Millisecond), wakeBound)
	}
	e.unlock(lc, "third locker")
	// The Locker whose attempts failed can still lock.
	e.lock(lb, "after failed attempts")
	e.unlock(lb, "after failed attempts")
}

// The ctx of Lock bounds only the wait: a held lock outlives it, and outlives its TTL bound
// while the holder is alive.
func testLockOutlivesContext(e *env) {
	a, b := e.open(), e.open()
	key := e.key("lock")
	ttl := e.ttl()
	la := e.newLock(a, key, "a", ttl)
	ctx, cancel := context.WithTimeout(e.ctx, eventTimeout)
	lost, err := la.Lock(ctx)
	cancel()
	if err != nil {
		e.Fatalf("Lock: %v", err)
	}
	e.throughout(time.Now().Add(e.bound(ttl)+ttl), "lock held after its ctx ended", func() bool {
		p, err := b.Get(e.ctx, key)
		return !isClosed(lost) && err == nil && string(p.Value) == "a"
	})
	lb := e.newLock(b, key, "b", ttl)
	ctx, cancel = context.WithTimeout(e.ctx, waiterStart)
	defer cancel()
	if _, err := lb.Lock(ctx); !errors.Is(err, context.DeadlineExceeded) {
		e.Errorf("second locker: Lock = %v, want context.DeadlineExceeded while the lock is held", err)
	}
	e.unlock(la, "holder")
}

// A holder whose lock key is deleted by someone else loses the lock: its channel closes
// promptly, Unlock says nil, and another client can lock.
func testLockLostOnKeyDelete(e *env) {
	a, b := e.open(), e.open()
	key := e.key("lock")
	la := e.newLock(a, key, "a", e.ttl())
	lost := e.lock(la, "holder")
	start := time.Now()
	e.del(b, key)
	if !closedWithin(lost, lostBound) {
		e.Fatalf("lost channel still open %v after the lock key was deleted", lostBound)
	}
	e.Logf("loss noticed %v after the Delete", time.Since(start).Round(time.Millisecond))
	if err := la.Unlock(e.ctx); err != nil {
		e.Errorf("Unlock after the lock was lost = %v, want nil", err)
	}
	lb := e.newLock(b, key, "b", e.ttl())
	ctx, cancel := context.WithTimeout(e.ctx, lostBound)
	defer cancel()
	if _, err := lb.Lock(ctx); err != nil {
		e.Fatalf("another client could not lock after the loss: %v", err)
	}
	e.wantValue(a, key, []byte("b"))
	e.unlock(lb, "new holder")
	// The Locker that lost the lock can take it again.
	e.lock(la, "relock after loss")
	e.unlock(la, "relock after loss")
}

func testLockLostClosedOnUnlock(e *env) {
	st := e.open()
	l := e.newLock(st, e.key("lock"), "v", e.ttl())
	lost := e.lock(l, "lock")
	e.unlock(l, "unlock")
	if !closedWithin(lost, wakeBound) {
		e.Errorf("lost channel still open %v after Unlock", wakeBound)
	}
}

func testLockLostClosedOnClose(e *env) {
	st, other := e.open(), e.open()
	key := e.key("lock")
	lost := e.lock(e.newLock(st, key, "v", e.ttl()), "lock")
	if err := st.Close(); err != nil {
		e.Errorf("Close: %v", err)
	}
	if !closedWithin(lost, lostBound) {
		e.Errorf("lost channel still open %v after Close", lostBound)
	}
	e.wantAbsent(other, key)
}

// Unlock of a Locker that never locked says ErrNotLocked (wrapped with the key).
func testUnlockNotLocked(e *env) {
	a, b := e.open(), e.open()
	key := e.key("lock")
	l := e.newLock(a, key, "v", e.ttl())
	e.wantErr(l.Unlock(e.ctx), kvstore.ErrNotLocked, "Unlock before Lock")
	// Held by someone else: still not ours to unlock, and the holder keeps it.
	holder := e.newLock(b, key, "holder", e.ttl())
	e.lock(holder, "holder")
	e.wantErr(l.Unlock(e.ctx), kvstore.ErrNotLocked, "Unlock of a lock another client holds")
	e.wantValue(a, key, []byte("holder"))
	e.unlock(holder, "holder")
}

// A Locker can lock again after Unlock, each time with a fresh lost channel.
func testRelock(e *env) {
	a, b := e.open(), e.open()
	key := e.key("lock")
	l := e.newLock(a, key, "v", e.ttl())
	var prev <-chan struct{}
	for i := range 3 {
		lost := e.lock(l, fmt.Sprintf("lock #%d", i))
		if prev != nil && !isClosed(prev) {
			e.Errorf("lock #%d: the previous lost channel is still open", i)
		}
		e.wantValue(b, key, []byte("v"))
		e.unlock(l, fmt.Sprintf("unlock #%d", i))
		e.wantAbsent(b, key)
		prev = lost
	}
}

// Closing the holder's store releases its lock at once (not by expiry: the lock's TTL is the
// 15s default here) and wakes a waiter on another client.
func testCloseReleasesLock(e *env) {
	a, b := e.open(), e.open()
	key := e.key("lock")
	la := e.newLock(a, key, "a", kvstore.DefaultLockTTL)
	lost := e.lock(la, "holder")
	acq := e.lockAsync(e.newLock(b, key, "b", kvstore.DefaultLockTTL), time.Minute)
	e.stillWaiting(acq, "waiter")
	start := time.Now()
	if err := a.Close(); err != nil {
		e.Errorf("Close: %v", err)
	}
	closed := time.Now()
	if d := closed.Sub(start); d > lostBound {
		e.Errorf("Close took %v", d)
	}
	got := e.awaitAcquired(acq, closed.Add(eventTimeout), "waiter after the holder's Close")
	if d := got.at.Sub(closed); d >= wakeBound {
		e.Errorf("the waiter got the lock %v after the holder's Close returned, want < %v", d.Round(time.Millisecond), wakeBound)
	}
	if !isClosed(lost) {
		e.Errorf("the closed holder's lost channel is still open")
	}
	e.wantValue(b, key, []byte("b"))
}

// Lock bookkeeping (sessions, queues of waiters) is invisible: List and WatchTree show the
// lock key with its value while held, and nothing else.
func testLockBookkeepingHidden(e *env) {
	a, b := e.open(), e.open()
	dir, key := e.key("d"), e.key("d/lock")
	e.put(a, e.key("d/x"), []byte("x"), nil)
	la, lb := e.newLock(a, key, "a", e.ttl()), e.newLock(b, key, "b", e.ttl())
	e.lock(la, "holder")
	acq := e.lockAsync(lb, time.Minute)
	e.stillWaiting(acq, "waiter")
	e.wantList(b, dir, kv{"d/lock", "a"}, kv{"d/x", "x"})
	e.wantList(a, e.prefix, kv{"d/lock", "a"}, kv{"d/x", "x"})
	e.wantListEmpty(b, key)
	tree, err := b.WatchTree(e.ctx, dir)
	if err != nil {
		e.Fatalf("WatchTree: %v", err)
	}
	e.wantTreeEvent(tree, "WatchTree first event", kv{"d/lock", "a"}, kv{"d/x", "x"})

	e.unlock(la, "holder")
	e.awaitAcquired(acq, time.Now().Add(eventTimeout), "waiter")
	e.wantList(a, dir, kv{"d/lock", "b"}, kv{"d/x", "x"})
	// The hand-over may show the lock key absent for a moment, or not at all.
	e.awaitTree(tree, "WatchTree after the hand-over", func(got []kv) bool {
		return len(got) == 1 && got[0] == kv{"d/x", "x"}
	}, kv{"d/lock", "b"}, kv{"d/x", "x"})
	e.unlock(lb, "new holder")
	e.wantList(a, dir, kv{"d/x", "x"})
	e.awaitTree(tree, "WatchTree after the last Unlock", func([]kv) bool { return false }, kv{"d/x", "x"})
}

// testLockGivenUpLeavesNothing: a Lock call whose ctx ends while a request of it is in flight
// (applied by the server, its answer not back yet) must not leave the lock taken by nobody.
// Answers come back late through a slow link, and the call is given up at several moments of
// its course; each time another client must get the lock within lostBound. The lock's TTL is a
// minute, so a lock left behind would show.
func testLockGivenUpLeavesNothing(e *env) {
	if _, ok := serverAddr(e.s.Addrs[0]); !ok {
		return // embedded (a file, a namespace): no request is ever in flight to a server
	}
	const delay, longTTL = 150 * time.Millisecond, time.Minute
	_, addr := newSlowLink(e.T, e.s.Addrs[0], delay)
	slow, direct := e.openAt([]string{addr}), e.open()
	key := e.key("lock")
	ls, ld := e.newLock(slow, key, "slow", longTTL), e.newLock(direct, key, "direct", longTTL)
	// How long an uncontended Lock takes through the link (the quickest of three: the first
	// may set things up once, and a loaded machine may stretch any): the requests of a Lock
	// call lie within that span.
	full := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		e.lock(ls, "through the slow link")
		full = min(full, time.Since(start))
		e.unlock(ls, "through the slow link")
	}
	given := 0
	for _, frac := range []float64{0.25, 0.5, 0.75, 0.95} {
		timeout := time.Duration(float64(full) * frac)
		ctx, cancel := context.WithTimeout(e.ctx, timeout)
		_, err := ls.Lock(ctx)
		cancel()
		if err == nil { // in time after all
			e.unlock(ls, "through the slow link")
			continue
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			e.Fatalf("Lock given up after %v: %v, want context.DeadlineExceeded", timeout, err)
		}
		given++
		start := time.Now()
		ctx, cancel = context.WithTimeout(e.ctx, lostBound)
		_, err = ld.Lock(ctx)
		cancel()
		e.Logf("Lock given up after %v (uncontended: %v); the other client's Lock took %v", timeout.Round(time.Millisecond),
			full.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if err != nil {
			e.Fatalf("a Lock given up %v into its course (an uncontended one takes %v) left the lock taken: "+
				"another client's Lock within %v: %v", timeout, full.Round(time.Millisecond), lostBound, err)
		}
		e.unlock(ld, "the other client")
	}
	if given == 0 {
		e.Fatalf("every Lock through the slow link won within its deadline: the test gave up none")
	}
}
