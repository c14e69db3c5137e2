package kvtest

import (
	"errors"
	"fmt"
	"sync"

	"github.com/kvop/kvop/pkg/kvstore"
)

func atomicSubtests() []subtest {
	return []subtest{
		{"AtomicPutCreateOnly", testAtomicPutCreateOnly},
		{"AtomicPutCompareAndSwap", testAtomicPutCAS},
		{"AtomicPutKeyGone", testAtomicPutKeyGone},
		{"AtomicDelete", testAtomicDelete},
		{"LastIndexNeverRepeats", testLastIndexNeverRepeats},
		{"AtomicPutConcurrentRacers", testAtomicPutRacers},
		{"AtomicPutConcurrentCreators", testAtomicPutCreators},
		{"AtomicDeleteConcurrentRacers", testAtomicDeleteRacers},
	}
}

// wantAtomicFail checks a failed AtomicPut/AtomicDelete: false, no pair, and the sentinel.
func (e *env) wantAtomicFail(ok bool, p *kvstore.KVPair, err, target error, what string) {
	e.Helper()
	if ok || p != nil || !errors.Is(err, target) {
		e.Errorf("%s = %v, %s, %v; want false, nil, %v", what, ok, showPair(p), err, target)
	}
}

// AtomicPut with a nil previous creates the key only if it is absent.
func testAtomicPutCreateOnly(e *env) {
	st := e.open()
	k := e.key("k")
	ok, p, err := st.AtomicPut(e.ctx, k, []byte("v1"), nil, nil)
	if err != nil || !ok {
		e.Fatalf("AtomicPut(absent, nil previous) = %v, %v; want true", ok, err)
	}
	e.checkPair(p, k, []byte("v1"), "AtomicPut result")
	if g := e.get(st, k); g.LastIndex != p.LastIndex || p.LastIndex == 0 {
		e.Errorf("AtomicPut returned LastIndex %d, Get says %d (and it must not be 0)", p.LastIndex, g.LastIndex)
	}
	ok, p2, err := st.AtomicPut(e.ctx, k, []byte("v2"), nil, nil)
	e.wantAtomicFail(ok, p2, err, kvstore.ErrKeyExists, "AtomicPut(present, nil previous)")
	e.wantValue(st, k, []byte("v1"))

	// A path that is only a parent of keys is absent, so it can be created.
	e.put(st, e.key("parent/child"), []byte("c"), nil)
	ok, _, err = st.AtomicPut(e.ctx, e.key("parent"), []byte("p"), nil, nil)
	if err != nil || !ok {
		e.Errorf("AtomicPut(parent-only path, nil previous) = %v, %v; want true", ok, err)
	}
	e.wantValue(st, e.key("parent"), []byte("p"))
	// And a key can be created below an existing key.
	ok, _, err = st.AtomicPut(e.ctx, e.key("k/below"), []byte("b"), nil, nil)
	if err != nil || !ok {
		e.Errorf("AtomicPut(below a key, nil previous) = %v, %v; want true", ok, err)
	}
}

// With a previous, AtomicPut succeeds only while LastIndex still matches, and returns the new
// pair with a new LastIndex. Pairs from Get, List and AtomicPut are all valid previous pairs.
func testAtomicPutCAS(e *env) {
	st := e.open()
	k := e.key("k")
	e.put(st, k, []byte("v1"), nil)
	p1 := e.get(st, k)
	ok, p2, err := st.AtomicPut(e.ctx, k, []byte("v2"), p1, nil)
	if err != nil || !ok {
		e.Fatalf("AtomicPut(current previous) = %v, %v; want true", ok, err)
	}
	e.checkPair(p2, k, []byte("v2"), "AtomicPut result")
	if p2.LastIndex <= p1.LastIndex {
		e.Errorf("AtomicPut returned LastIndex %d after %d; it must grow", p2.LastIndex, p1.LastIndex)
	}
	if g := e.wantValue(st, k, []byte("v2")); g.LastIndex != p2.LastIndex {
		e.Errorf("AtomicPut returned LastIndex %d, Get says %d", p2.LastIndex, g.LastIndex)
	}

	ok, p, err := st.AtomicPut(e.ctx, k, []byte("stale"), p1, nil)
	e.wantAtomicFail(ok, p, err, kvstore.ErrKeyModified, "AtomicPut(stale previous)")
	e.wantValue(st, k, []byte("v2"))

	// The returned pair is the previous of the next swap, and so is a List pair.
	ok, p3, err := st.AtomicPut(e.ctx, k, []byte("v3"), p2, nil)
	if err != nil || !ok {
		e.Fatalf("AtomicPut(previous returned by AtomicPut) = %v, %v", ok, err)
	}
	l := e.wantList(st, e.prefix, kv{"k", "v3"})
	ok, _, err = st.AtomicPut(e.ctx, k, []byte("v4"), l[0], nil)
	if err != nil || !ok {
		e.Fatalf("AtomicPut(previous from List) = %v, %v", ok, err)
	}
	// A plain Put is a change too: it makes older pairs stale.
	e.put(st, k, []byte("v5"), nil)
	ok, p, err = st.AtomicPut(e.ctx, k, []byte("stale"), p3, nil)
	e.wantAtomicFail(ok, p, err, kvstore.ErrKeyModified, "AtomicPut(previous from before a Put)")
	e.wantValue(st, k, []byte("v5"))
}

// AtomicPut with a previous on a key that is gone says ErrKeyNotFound and creates nothing.
func testAtomicPutKeyGone(e *env) {
	st := e.open()
	k := e.key("k")
	e.put(st, k, []byte("v"), nil)
	p := e.get(st, k)
	e.del(st, k)
	ok, got, err := st.AtomicPut(e.ctx, k, []byte("again"), p, nil)
	e.wantAtomicFail(ok, got, err, kvstore.ErrKeyNotFound, "AtomicPut(previous of a deleted key)")
	e.wantAbsent(st, k)
	never := &kvstore.KVPair{Key: e.key("never"), LastIndex: p.LastIndex}
	ok, got, err = st.AtomicPut(e.ctx, e.key("never"), []byte("x"), never, nil)
	e.wantAtomicFail(ok, got, err, kvstore.ErrKeyNotFound, "AtomicPut(previous, key never written)")
	e.wantAbsent(st, e.key("never"))
}

// AtomicDelete needs a previous, deletes only while LastIndex matches, and says
// ErrKeyNotFound once the key is gone.
func testAtomicDelete(e *env) {
	st := e.open()
	k := e.key("k")
	e.put(st, k, []byte("v1"), nil)
	p1 := e.get(st, k)
	ok, err := st.AtomicDelete(e.ctx, k, nil)
	if ok || !errors.Is(err, kvstore.ErrPreviousNotSpecified) {
		e.Errorf("AtomicDelete(nil previous) = %v, %v; want false, ErrPreviousNotSpecified", ok, err)
	}
	e.put(st, k, []byte("v2"), nil)
	ok, err = st.AtomicDelete(e.ctx, k, p1)
	if ok || !errors.Is(err, kvstore.ErrKeyModified) {
		e.Errorf("AtomicDelete(stale previous) = %v, %v; want false, ErrKeyModified", ok, err)
	}
	e.wantValue(st, k, []byte("v2"))
	p2 := e.get(st, k)
	ok, err = st.AtomicDelete(e.ctx, k, p2)
	if err != nil || !ok {
		e.Fatalf("AtomicDelete(current previous) = %v, %v; want true", ok, err)
	}
	e.wantAbsent(st, k)
	ok, err = st.AtomicDelete(e.ctx, k, p2)
	if ok || !errors.Is(err, kvstore.ErrKeyNotFound) {
		e.Errorf("AtomicDelete of a deleted key = %v, %v; want false, ErrKeyNotFound", ok, err)
	}
	ok, err = st.AtomicDelete(e.ctx, e.key("never"), nil)
	if ok || !errors.Is(err, kvstore.ErrPreviousNotSpecified) {
		e.Errorf("AtomicDelete(absent, nil previous) = %v, %v; want false, ErrPreviousNotSpecified", ok, err)
	}
	// Deleting a key leaves the keys below it.
	e.put(st, e.key("p"), []byte("p"), nil)
	e.put(st, e.key("p/c"), []byte("c"), nil)
	if ok, err := st.AtomicDelete(e.ctx, e.key("p"), e.get(st, e.key("p"))); err != nil || !ok {
		e.Fatalf("AtomicDelete(key with keys below) = %v, %v", ok, err)
	}
	e.wantList(st, e.prefix, kv{"p/c", "c"})
}

// A key deleted and written again never gets a LastIndex it had before, so a previous from
// before the delete is stale, however the key was written.
func testLastIndexNeverRepeats(e *env) {
	st := e.open()
	k := e.key("k")
	seen := map[uint64]string{}
	var pairs []*kvstore.KVPair
	record := func(p *kvstore.KVPair, how string) {
		e.Helper()
		if prev, dup := seen[p.LastIndex]; dup {
			e.Errorf("LastIndex %d of %s repeats the one of %s", p.LastIndex, how, prev)
		}
		seen[p.LastIndex] = how
		pairs = append(pairs, p)
	}
	for round := range 3 {
		// The same value each time, so that nothing but LastIndex tells the versions apart.
		e.put(st, k, []byte("same"), nil)
		record(e.get(st, k), fmt.Sprintf("Put #%d", round))
		e.del(st, k)
		ok, p, err := st.AtomicPut(e.ctx, k, []byte("same"), nil, nil)
		if err != nil || !ok {
			e.Fatalf("AtomicPut(create) #%d = %v, %v", round, ok, err)
		}
		record(p, fmt.Sprintf("AtomicPut #%d", round))
		for _, old := range pairs[:len(pairs)-1] {
			ok, got, err := st.AtomicPut(e.ctx, k, []byte("stale"), old, nil)
			e.wantAtomicFail(ok, got, err, kvstore.ErrKeyModified, fmt.Sprintf("AtomicPut(previous @%d from before a delete)", old.LastIndex))
			ok, err = st.AtomicDelete(e.ctx, k, old)
			if ok || !errors.Is(err, kvstore.ErrKeyModified) {
				e.Errorf("AtomicDelete(previous @%d from before a delete) = %v, %v; want false, ErrKeyModified", old.LastIndex, ok, err)
			}
		}
		e.wantValue(st, k, []byte("same"))
		if ok, err := st.AtomicDelete(e.ctx, k, p); err != nil || !ok {
			e.Fatalf("AtomicDelete #%d = %v, %v", round, ok, err)
		}
	}
}

// race runs n calls of f at once (released together to maximise contention), half on each
// client, and returns their results.
func race[R any](e *env, clients []kvstore.Store, n int, f func(st kvstore.Store, i int) R) []R {
	out := make([]R, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = f(clients[i%len(clients)], i)
		})
	}
	close(start)
	wg.Wait()
	return out
}

type putResult struct {
	ok  bool
	p   *kvstore.KVPair
	err error
}

const (
	racers = 8
	rounds = 5
)

// Of concurrent AtomicPuts with the same previous, on two clients, exactly one wins; the
// others fail with ErrKeyModified, and the winner's value and LastIndex are what remains.
func testAtomicPutRacers(e *env) {
	clients := []kvstore.Store{e.open(), e.open()}
	k := e.key("k")
	e.put(clients[0], k, []byte("start"), nil)
	for round := range rounds {
		prev := e.get(clients[0], k)
		res := race(e, clients, racers, func(st kvstore.Store, i int) putResult {
			ok, p, err := st.AtomicPut(e.ctx, k, fmt.Appendf(nil, "r%d-%d", round, i), prev, nil)
			return putResult{ok, p, err}
		})
		winner := -1
		for i, r := range res {
			switch {
			case r.ok && r.err == nil:
				if winner >= 0 {
					e.Errorf("round %d: racers %d and %d both won", round, winner, i)
				}
				winner = i
			case !r.ok && errors.Is(r.err, kvstore.ErrKeyModified):
			default:
				e.Errorf("round %d racer %d: AtomicPut = %v, %v; a loser must get false, ErrKeyModified", round, i, r.ok, r.err)
			}
		}
		if winner < 0 {
			e.Fatalf("round %d: no racer won", round)
		}
		w := res[winner].p
		if g := e.wantValue(clients[1], k, fmt.Appendf(nil, "r%d-%d", round, winner)); w == nil || g.LastIndex != w.LastIndex {
			e.Errorf("round %d: winner's pair %s, Get says LastIndex %d", round, showPair(w), g.LastIndex)
		}
	}
}

// Of concurrent creators (nil previous) of an absent key, exactly one wins; the others get
// ErrKeyExists.
func testAtomicPutCreators(e *env) {
	clients := []kvstore.Store{e.open(), e.open()}
	for round := range rounds {
		k := e.key(fmt.Sprintf("k%d", round))
		res := race(e, clients, racers, func(st kvstore.Store, i int) putResult {
			ok, p, err := st.AtomicPut(e.ctx, k, fmt.Appendf(nil, "%d", i), nil, nil)
			return putResult{ok, p, err}
		})
		winner := -1
		for i, r := range res {
			switch {
			case r.ok && r.err == nil:
				if winner >= 0 {
					e.Errorf("round %d: creators %d and %d both won", round, winner, i)
				}
				winner = i
			case !r.ok && errors.Is(r.err, kvstore.ErrKeyExists):
			default:
				e.Errorf("round %d creator %d: AtomicPut = %v, %v; a loser must get false, ErrKeyExists", round, i, r.ok, r.err)
			}
		}
		if winner < 0 {
			e.Fatalf("round %d: no creator won", round)
		}
		e.wantValue(clients[0], k, fmt.Appendf(nil, "%d", winner))
	}
}

// Of concurrent AtomicDeletes with the same previous, exactly one wins; the others see the
// key modified or gone.
func testAtomicDeleteRacers(e *env) {
	clients := []kvstore.Store{e.open(), e.open()}
	k := e.key("k")
	for round := range rounds {
		e.put(clients[round%2], k, fmt.Appendf(nil, "%d", round), nil)
		prev := e.get(clients[0], k)
		type delResult struct {
			ok  bool
			err error
		}
		res := race(e, clients, racers, func(st kvstore.Store, i int) delResult {
			ok, err := st.AtomicDelete(e.ctx, k, prev)
			return delResult{ok, err}
		})
		wins := 0
		for i, r := range res {
			switch {
			case r.ok && r.err == nil:
				wins++
			case !r.ok && (errors.Is(r.err, kvstore.ErrKeyNotFound) || errors.Is(r.err, kvstore.ErrKeyModified)):
			default:
				e.Errorf("round %d racer %d: AtomicDelete = %v, %v; a loser must get false and ErrKeyNotFound or ErrKeyModified", round, i, r.ok, r.err)
			}
		}
		if wins != 1 {
			e.Errorf("round %d: %d AtomicDeletes won, want exactly 1", round, wins)
		}
		e.wantAbsent(clients[1], k)
	}
}
