package kvtest

import (
	"errors"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

func ttlSubtests() []subtest {
	return []subtest{
		{"TTLExpires", testTTLExpires},
		{"TTLRefreshedByPut", testTTLRefreshedByPut},
		{"WatchSeesExpiry", testWatchSeesExpiry},
		{"KeepAliveUntilClose", testKeepAliveUntilClose},
		{"KeepAliveRefreshIsNotAChange", testKeepAliveRefreshIsNotAChange},
		{"PutWithoutTTLEndsExpiry", testPutWithoutTTLEndsExpiry},
		{"DeleteStopsKeepAlive", testDeleteStopsKeepAlive},
	}
}

// putTTL writes key with opts and returns when the write returned: the moment the TTL bound
// is measured from (the server may stamp the write as late as that).
func (e *env) putTTL(st kvstore.Store, key string, value []byte, opts *kvstore.WriteOptions) time.Time {
	e.Helper()
	e.put(st, key, value, opts)
	return time.Now()
}

// goneBy waits until a second client no longer sees key, which must happen by deadline.
func (e *env) goneBy(st kvstore.Store, key string, deadline time.Time, what string) time.Time {
	e.Helper()
	return e.eventually(deadline, what+": key still present after its TTL bound", func() bool {
		return !e.exists(st, key)
	})
}

// A key written with a TTL (by Put or AtomicPut) and not refreshed is present at first, for
// every client, and gone within the bound — not long before its TTL.
func testTTLExpires(e *env) {
	a, b := e.open(), e.open()
	ttl, bound := e.ttl(), e.bound(e.ttl())
	kPut, kAtomic := e.key("put"), e.key("atomic")

	start := time.Now()
	wrotePut := e.putTTL(a, kPut, []byte("v"), &kvstore.WriteOptions{TTL: ttl})
	ok, _, err := a.AtomicPut(e.ctx, kAtomic, []byte("v"), nil, &kvstore.WriteOptions{TTL: ttl})
	if err != nil || !ok {
		e.Fatalf("AtomicPut(TTL) = %v, %v", ok, err)
	}
	wroteAtomic := time.Now()
	e.wantValue(b, kPut, []byte("v"))
	e.wantValue(b, kAtomic, []byte("v"))
	e.wantList(b, e.prefix, kv{"atomic", "v"}, kv{"put", "v"})

	gone := e.goneBy(b, kPut, wrotePut.Add(bound), "Put with TTL")
	if lived := gone.Sub(start); lived < ttl/2 {
		e.Errorf("the TTL key vanished after %v, TTL is %v", lived, ttl)
	}
	e.goneBy(b, kAtomic, wroteAtomic.Add(bound), "AtomicPut with TTL")
	e.wantAbsent(a, kPut)
	e.wantAbsent(a, kAtomic)
	e.wantListEmpty(b, e.prefix)
	// An expired key can be created again.
	ok, _, err = a.AtomicPut(e.ctx, kAtomic, []byte("again"), nil, nil)
	if err != nil || !ok {
		e.Errorf("AtomicPut(create) after expiry = %v, %v", ok, err)
	}
}

// Re-Putting with the TTL keeps a key alive for longer than twice its TTL; once the re-Puts
// stop, it expires within the bound.
func testTTLRefreshedByPut(e *env) {
	a, b := e.open(), e.open()
	ttl, bound := e.ttl(), e.bound(e.ttl())
	k := e.key("k")
	opts := &kvstore.WriteOptions{TTL: ttl}
	lastWrite := e.putTTL(a, k, []byte("v"), opts)
	end := time.Now().Add(2*ttl + ttl/2)
	e.throughout(end, "key re-Put every TTL/4 is present", func() bool {
		if time.Since(lastWrite) >= ttl/4 {
			lastWrite = e.putTTL(a, k, []byte("v"), opts)
		}
		return e.exists(b, k)
	})
	e.goneBy(b, k, lastWrite.Add(bound), "TTL key no longer re-Put")
}

// Expiry is a change like any other: a watcher sees nil.
func testWatchSeesExpiry(e *env) {
	a, b := e.open(), e.open()
	k := e.key("k")
	ch, err := b.Watch(e.ctx, k)
	if err != nil {
		e.Fatalf("Watch: %v", err)
	}
	e.expectAbsentEvent(ch, "first event")
	wrote := e.putTTL(a, k, []byte("v"), &kvstore.WriteOptions{TTL: e.ttl()})
	e.expectValueEvent(ch, k, []byte("v"), "Put with TTL")
	deadline := wrote.Add(e.bound(e.ttl()))
	timer := time.NewTimer(time.Until(deadline) + pollInterval)
	defer timer.Stop()
	select {
	case p, ok := <-ch:
		if !ok {
			e.Fatalf("watch channel closed")
		}
		if p != nil {
			e.Errorf("event %s, want nil (expired)", showPair(p))
		}
	case <-timer.C:
		e.Fatalf("no nil event within the TTL bound %v of the write", e.bound(e.ttl()))
	}
}

// A KeepAlive key outlives its bound for as long as the store is open; Close ends the
// keep-alive and the key expires within the bound.
func testKeepAliveUntilClose(e *env) {
	a, b := e.open(), e.open()
	ttl, bound := e.ttl(), e.bound(e.ttl())
	k := e.key("k")
	e.put(a, k, []byte("v"), &kvstore.WriteOptions{TTL: ttl, KeepAlive: true})
	e.throughout(time.Now().Add(bound+ttl), "KeepAlive key present", func() bool { return e.exists(b, k) })
	e.wantValue(b, k, []byte("v"))
	if err := a.Close(); err != nil {
		e.Errorf("Close: %v", err)
	}
	e.goneBy(b, k, time.Now().Add(bound), "KeepAlive key after Close")
}

// A keep-alive refresh is not a change: LastIndex stays, no Watch or WatchTree event is sent,
// and the pair read before is still a valid previous.
func testKeepAliveRefreshIsNotAChange(e *env) {
	a, b := e.open(), e.open()
	ttl, bound := e.ttl(), e.bound(e.ttl())
	opts := &kvstore.WriteOptions{TTL: ttl, KeepAlive: true}
	kPut, kAtomic := e.key("put"), e.key("atomic")
	e.put(a, kPut, []byte("p"), opts)
	ok, pa, err := a.AtomicPut(e.ctx, kAtomic, []byte("a"), nil, opts)
	if err != nil || !ok {
		e.Fatalf("AtomicPut(TTL, KeepAlive) = %v, %v", ok, err)
	}
	pp := e.get(b, kPut)
	watch, err := b.Watch(e.ctx, kPut)
	if err != nil {
		e.Fatalf("Watch: %v", err)
	}
	e.expectValueEvent(watch, kPut, []byte("p"), "first event")
	tree, err := b.WatchTree(e.ctx, e.prefix)
	if err != nil {
		e.Fatalf("WatchTree: %v", err)
	}
	e.wantTreeEvent(tree, "first event", kv{"atomic", "a"}, kv{"put", "p"})

	// Several refreshes happen within the bound; neither watch may hear of them.
	end := time.Now().Add(bound + ttl)
	quiet(e, watch, time.Until(end), "Watch of a KeepAlive key")
	quiet(e, tree, 100*time.Millisecond, "WatchTree of KeepAlive keys")
	if g := e.get(b, kPut); g.LastIndex != pp.LastIndex {
		e.Errorf("LastIndex of the KeepAlive key moved from %d to %d without a write", pp.LastIndex, g.LastIndex)
	}
	if g := e.get(b, kAtomic); g.LastIndex != pa.LastIndex {
		e.Errorf("LastIndex of the AtomicPut KeepAlive key moved from %d to %d without a write", pa.LastIndex, g.LastIndex)
	}
	ok, _, err = b.AtomicPut(e.ctx, kAtomic, []byte("swapped"), pa, nil)
	if err != nil || !ok {
		e.Errorf("AtomicPut with the pair from before the refreshes = %v, %v; refreshes are no change", ok, err)
	}
}

// A Put or AtomicPut without TTL ends the expiry (and the keep-alive) of a TTL key: it
// outlives the bound even after the writer is closed.
func testPutWithoutTTLEndsExpiry(e *env) {
	a, b := e.open(), e.open()
	ttl, bound := e.ttl(), e.bound(e.ttl())
	kKeep, kTTL, kAtomic := e.key("keepalive"), e.key("ttl"), e.key("atomic")
	e.put(a, kKeep, []byte("v"), &kvstore.WriteOptions{TTL: ttl, KeepAlive: true})
	e.put(a, kTTL, []byte("v"), &kvstore.WriteOptions{TTL: ttl})
	e.put(a, kAtomic, []byte("v"), &kvstore.WriteOptions{TTL: ttl, KeepAlive: true})

	e.put(a, kKeep, []byte("permanent"), nil)
	e.put(a, kTTL, []byte("permanent"), &kvstore.WriteOptions{}) // zero options: no TTL either
	ok, _, err := a.AtomicPut(e.ctx, kAtomic, []byte("permanent"), e.get(a, kAtomic), nil)
	if err != nil || !ok {
		e.Fatalf("AtomicPut without TTL = %v, %v", ok, err)
	}
	// Closing the writer ends whatever keep-alive or session it still has; the keys must not
	// depend on it any more.
	if err := a.Close(); err != nil {
		e.Errorf("Close: %v", err)
	}
	e.throughout(time.Now().Add(bound+ttl/2), "keys rewritten without TTL present", func() bool {
		return e.exists(b, kKeep) && e.exists(b, kTTL) && e.exists(b, kAtomic)
	})
	e.wantList(b, e.prefix, kv{"atomic", "permanent"}, kv{"keepalive", "permanent"}, kv{"ttl", "permanent"})
}

// Delete, AtomicDelete and DeleteTree of a KeepAlive key end its keep-alive: it stays deleted,
// also when another client deleted it.
func testDeleteStopsKeepAlive(e *env) {
	a, b := e.open(), e.open()
	ttl, bound := e.ttl(), e.bound(e.ttl())
	opts := &kvstore.WriteOptions{TTL: ttl, KeepAlive: true}
	keys := map[string]string{
		"delete": e.key("delete"), "other": e.key("other"), "atomic": e.key("atomic"), "tree": e.key("dir/k"),
	}
	for _, k := range keys {
		e.put(a, k, []byte("v"), opts)
	}
	e.del(a, keys["delete"])
	e.del(b, keys["other"])
	if ok, err := a.AtomicDelete(e.ctx, keys["atomic"], e.get(a, keys["atomic"])); err != nil || !ok {
		e.Fatalf("AtomicDelete = %v, %v", ok, err)
	}
	if err := a.DeleteTree(e.ctx, e.key("dir")); err != nil {
		e.Fatalf("DeleteTree: %v", err)
	}
	// Long enough for several refreshes, which must not bring a key back.
	e.throughout(time.Now().Add(bound+ttl/2), "deleted KeepAlive keys absent", func() bool {
		l, err := b.List(e.ctx, e.prefix)
		if err == nil {
			e.Errorf("deleted KeepAlive keys came back: %v", e.rel(l))
			return false
		}
		if !errors.Is(err, kvstore.ErrKeyNotFound) {
			e.Fatalf("List: %v", err)
		}
		return true
	})
	// Writing the key again starts afresh, without TTL this time.
	e.put(a, keys["delete"], []byte("again"), nil)
	e.wantList(b, e.prefix, kv{"delete", "again"})
}
