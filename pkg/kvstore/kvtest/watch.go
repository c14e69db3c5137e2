package kvtest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

func watchSubtests() []subtest {
	return []subtest{
		{"WatchFirstEventIsCurrentState", testWatchFirstEvent},
		{"WatchEveryChange", testWatchEveryChange},
		{"WatchRapidChangesKeepLatest", testWatchRapidChanges},
		{"WatchSeveralWatchers", testWatchSeveralWatchers},
		{"WatchClosesOnCancel", testWatchClosesOnCancel},
		{"WatchClosesOnClose", testWatchClosesOnClose},
		{"WatchTreeFirstEventIsFullList", testWatchTreeFirstEvent},
		{"WatchTreeEveryChange", testWatchTreeEveryChange},
		{"WatchTreeIgnoresOutside", testWatchTreeIgnoresOutside},
		{"WatchTreeClosesOnCancel", testWatchTreeClosesOnCancel},
		{"WatchTreeClosesOnClose", testWatchTreeClosesOnClose},
	}
}

// nextPair returns the next Watch event; the channel must not close and the event must come.
func (e *env) nextPair(ch <-chan *kvstore.KVPair, what string) *kvstore.KVPair {
	e.Helper()
	timer := time.NewTimer(eventTimeout)
	defer timer.Stop()
	select {
	case p, ok := <-ch:
		if !ok {
			e.Fatalf("%s: the watch channel closed", what)
		}
		return p
	case <-timer.C:
		e.Fatalf("%s: no event within %v", what, eventTimeout)
	}
	return nil
}

func (e *env) expectAbsentEvent(ch <-chan *kvstore.KVPair, what string) {
	e.Helper()
	if p := e.nextPair(ch, what); p != nil {
		e.Errorf("%s: event %s, want nil (absent)", what, showPair(p))
	}
}

func (e *env) expectValueEvent(ch <-chan *kvstore.KVPair, key string, value []byte, what string) *kvstore.KVPair {
	e.Helper()
	p := e.nextPair(ch, what)
	e.checkPair(p, key, value, what)
	return p
}

// quiet asserts that ch sends nothing (and stays open) for d.
func quiet[T any](e *env, ch <-chan T, d time.Duration, what string) {
	e.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case ev, ok := <-ch:
		if !ok {
			e.Fatalf("%s: the channel closed", what)
		}
		e.Fatalf("%s: unexpected event %v", what, ev)
	case <-timer.C:
	}
}

// nextTree returns the next WatchTree event.
func (e *env) nextTree(ch <-chan []*kvstore.KVPair, what string) []*kvstore.KVPair {
	e.Helper()
	timer := time.NewTimer(eventTimeout)
	defer timer.Stop()
	select {
	case l, ok := <-ch:
		if !ok {
			e.Fatalf("%s: the watch channel closed", what)
		}
		return l
	case <-timer.C:
		e.Fatalf("%s: no event within %v", what, eventTimeout)
	}
	return nil
}

// wantTreeEvent checks that the next WatchTree event is exactly want; an empty list must be an
// empty slice, not nil, so that callers can tell "no keys" from "no event".
func (e *env) wantTreeEvent(ch <-chan []*kvstore.KVPair, what string, want ...kv) []*kvstore.KVPair {
	e.Helper()
	l := e.nextTree(ch, what)
	if l == nil {
		e.Errorf("%s: event is a nil slice, want an empty (non-nil) one when there are no keys", what)
	}
	if got := e.rel(l); !slices.Equal(got, want) {
		e.Errorf("%s: event\n\t%v\nwant\n\t%v", what, got, want)
	}
	return l
}

// awaitTree reads WatchTree events until one equals want; every event before it must pass
// allowed (which says what it may be instead, e.g. a subset during a DeleteTree).
func (e *env) awaitTree(ch <-chan []*kvstore.KVPair, what string, allowed func([]kv) bool, want ...kv) {
	e.Helper()
	deadline := time.Now().Add(eventTimeout)
	for {
		timer := time.NewTimer(time.Until(deadline))
		select {
		case l, ok := <-ch:
			timer.Stop()
			if !ok {
				e.Fatalf("%s: the watch channel closed", what)
			}
			got := e.rel(l)
			if slices.Equal(got, want) {
				if l == nil {
					e.Errorf("%s: event is a nil slice, want an empty (non-nil) one", what)
				}
				return
			}
			if !allowed(got) {
				e.Fatalf("%s: unexpected event\n\t%v\nwant\n\t%v", what, got, want)
			}
		case <-timer.C:
			e.Fatalf("%s: no event %v within %v", what, want, eventTimeout)
		}
	}
}

// Watch sends the current state first: the pair, or nil when the key is absent.
func testWatchFirstEvent(e *env) {
	st := e.open()
	absent, err := st.Watch(e.ctx, e.key("absent"))
	if err != nil {
		e.Fatalf("Watch(absent): %v", err)
	}
	e.expectAbsentEvent(absent, "Watch(absent key) first event")

	k := e.key("present")
	e.put(st, k, []byte("v"), nil)
	cur := e.get(st, k)
	present, err := st.Watch(e.ctx, k)
	if err != nil {
		e.Fatalf("Watch(present): %v", err)
	}
	p := e.expectValueEvent(present, k, []byte("v"), "Watch(present key) first event")
	if p != nil && p.LastIndex != cur.LastIndex {
		e.Errorf("first event LastIndex %d, Get says %d", p.LastIndex, cur.LastIndex)
	}
	// No change, no event.
	quiet(e, present, 300*time.Millisecond, "Watch(present key) without changes")
	quiet(e, absent, 10*time.Millisecond, "Watch(absent key) without changes")
}

// After the first event, Watch sends one event per change, made by any client; a deletion is
// nil, and a key created after the watch started is seen. Each event's LastIndex is the one Get
// returns, so it can be used as AtomicPut's previous.
func testWatchEveryChange(e *env) {
	watcher, writer := e.open(), e.open()
	k := e.key("k")
	ch, err := watcher.Watch(e.ctx, k)
	if err != nil {
		e.Fatalf("Watch: %v", err)
	}
	e.expectAbsentEvent(ch, "first event")

	var last uint64
	check := func(value []byte, what string) *kvstore.KVPair {
		e.Helper()
		p := e.expectValueEvent(ch, k, value, what)
		if g := e.get(writer, k); p.LastIndex != g.LastIndex {
			e.Errorf("%s: event LastIndex %d, Get says %d", what, p.LastIndex, g.LastIndex)
		}
		if p.LastIndex <= last {
			e.Errorf("%s: event LastIndex %d after %d; it must grow", what, p.LastIndex, last)
		}
		last = p.LastIndex
		return p
	}
	e.put(writer, k, []byte("v1"), nil)
	check([]byte("v1"), "Put v1 (created after the watch started)")
	e.put(writer, k, []byte("v2"), nil)
	p := check([]byte("v2"), "Put v2")
	e.del(writer, k)
	e.expectAbsentEvent(ch, "Delete")
	e.put(writer, k, []byte("v3"), nil)
	p3 := check([]byte("v3"), "Put v3 (re-created)")
	if _, _, err := writer.AtomicPut(e.ctx, k, []byte("stale"), p, nil); err == nil {
		e.Errorf("AtomicPut with a previous from before the Delete succeeded")
	}
	ok, p4, err := writer.AtomicPut(e.ctx, k, []byte("v4"), p3, nil)
	if err != nil || !ok {
		e.Fatalf("AtomicPut(v4): %v, %v", ok, err)
	}
	check([]byte("v4"), "AtomicPut v4 (the failed AtomicPut before it is no change)")
	if ok, err := writer.AtomicDelete(e.ctx, k, p4); err != nil || !ok {
		e.Fatalf("AtomicDelete: %v, %v", ok, err)
	}
	e.expectAbsentEvent(ch, "AtomicDelete")
	// Changes of other keys, also below k, are not changes of k.
	e.put(writer, k+"/child", []byte("c"), nil)
	e.put(writer, k+"x", []byte("x"), nil)
	e.put(writer, k, []byte("v5"), nil)
	check([]byte("v5"), "Put v5 after changes of other keys")
	// The watching client's own writes count too.
	e.put(watcher, k, []byte("v6"), nil)
	check([]byte("v6"), "Put v6 by the watching client")
}

// Rapid changes may coalesce, but events arrive in order and the last state always arrives.
func testWatchRapidChanges(e *env) {
	watcher, writer := e.open(), e.open()
	k := e.key("k")
	ch, err := watcher.Watch(e.ctx, k)
	if err != nil {
		e.Fatalf("Watch: %v", err)
	}
	e.expectAbsentEvent(ch, "first event")
	const n = 30
	for i := range n {
		e.put(writer, k, []byte(strconv.Itoa(i)), nil)
	}
	seen, prev, prevIndex := 0, -1, uint64(0)
	for prev != n-1 {
		p := e.nextPair(ch, fmt.Sprintf("waiting for the last of %d rapid Puts (last seen %d)", n, prev))
		if p == nil {
			e.Fatalf("nil event while only Puts happened")
		}
		i, err := strconv.Atoi(string(p.Value))
		if err != nil || i <= prev || p.LastIndex <= prevIndex {
			e.Fatalf("event %s after value %d @%d: events must follow the order of the changes", showPair(p), prev, prevIndex)
		}
		seen, prev, prevIndex = seen+1, i, p.LastIndex
	}
	e.Logf("%d rapid Puts arrived as %d events", n, seen)
	e.del(writer, k)
	e.expectAbsentEvent(ch, "Delete after the rapid Puts")
}

// Several watches of one key, on one client and on another, each get every event; ending one
// does not end the others.
func testWatchSeveralWatchers(e *env) {
	a, b := e.open(), e.open()
	k := e.key("k")
	ctx1, cancel1 := context.WithCancel(e.ctx)
	defer cancel1()
	var chans []<-chan *kvstore.KVPair
	for i, st := range []kvstore.Store{a, a, a, b} {
		ctx := e.ctx
		if i == 0 {
			ctx = ctx1
		}
		ch, err := st.Watch(ctx, k)
		if err != nil {
			e.Fatalf("Watch %d: %v", i, err)
		}
		e.expectAbsentEvent(ch, fmt.Sprintf("watcher %d first event", i))
		chans = append(chans, ch)
	}
	e.put(b, k, []byte("v1"), nil)
	for i, ch := range chans {
		e.expectValueEvent(ch, k, []byte("v1"), fmt.Sprintf("watcher %d", i))
	}
	cancel1()
	if !closedWithin(chans[0], eventTimeout) {
		e.Fatalf("watcher 0 not closed after its ctx was cancelled")
	}
	e.put(a, k, []byte("v2"), nil)
	for i, ch := range chans[1:] {
		e.expectValueEvent(ch, k, []byte("v2"), fmt.Sprintf("watcher %d after watcher 0 ended", i+1))
	}
}

func testWatchClosesOnCancel(e *env) {
	st := e.open()
	k := e.key("k")
	e.put(st, k, []byte("v"), nil)
	ctx, cancel := context.WithCancel(e.ctx)
	ch, err := st.Watch(ctx, k)
	if err != nil {
		e.Fatalf("Watch: %v", err)
	}
	e.expectValueEvent(ch, k, []byte("v"), "first event")
	// A watch whose events are never read must end too: its sender must not block on the
	// channel once ctx is done. Reading it here would unblock such a sender, so it is left
	// unread and the goroutine check at the end of Run catches a sender that stays behind.
	ctx2, cancel2 := context.WithCancel(e.ctx)
	if _, err := st.Watch(ctx2, e.key("other")); err != nil {
		e.Fatalf("Watch(other): %v", err)
	}
	cancel2()
	cancel()
	if !closedWithin(ch, eventTimeout) {
		e.Fatalf("Watch channel still open %v after its ctx was cancelled", eventTimeout)
	}
	// The store is still usable.
	e.put(st, k, []byte("after"), nil)
	e.wantValue(st, k, []byte("after"))
}

func testWatchClosesOnClose(e *env) {
	st := e.open()
	k := e.key("k")
	ch, err := st.Watch(e.ctx, k)
	if err != nil {
		e.Fatalf("Watch: %v", err)
	}
	e.expectAbsentEvent(ch, "first event")
	if err := st.Close(); err != nil {
		e.Errorf("Close: %v", err)
	}
	if !closedWithin(ch, eventTimeout) {
		e.Fatalf("Watch channel still open %v after the store was closed", eventTimeout)
	}
}

// WatchTree sends the full List first: an empty slice when there is nothing below.
func testWatchTreeFirstEvent(e *env) {
	st := e.open()
	// A string-prefix sibling ("dx") and the directory key itself are not below "d".
	e.put(st, e.key("dx"), []byte("sibling"), nil)
	e.put(st, e.key("d"), []byte("itself"), nil)
	empty, err := st.WatchTree(e.ctx, e.key("d"))
	if err != nil {
		e.Fatalf("WatchTree(empty): %v", err)
	}
	e.wantTreeEvent(empty, "WatchTree(empty directory) first event")

	e.put(st, e.key("full/a"), []byte("a"), nil)
	e.put(st, e.key("full/b/c/d"), []byte("deep"), nil)
	e.put(st, e.key("full/a-b"), []byte("a-b"), nil)
	full, err := st.WatchTree(e.ctx, e.key("full"))
	if err != nil {
		e.Fatalf("WatchTree(full): %v", err)
	}
	l := e.wantTreeEvent(full, "WatchTree first event", kv{"full/a", "a"}, kv{"full/a-b", "a-b"}, kv{"full/b/c/d", "deep"})
	for _, p := range l {
		if g := e.get(st, p.Key); g.LastIndex != p.LastIndex {
			e.Errorf("WatchTree pair %s: LastIndex %d, Get says %d", p.Key, p.LastIndex, g.LastIndex)
		}
	}
	quiet(e, full, 300*time.Millisecond, "WatchTree without changes")
	quiet(e, empty, 10*time.Millisecond, "WatchTree(empty directory) without changes")
}

// After each change below the directory, at any depth and by any client, WatchTree sends the
// full list again, deletions included.
func testWatchTreeEveryChange(e *env) {
	watcher, writer := e.open(), e.open()
	dir := e.key("d")
	e.put(writer, e.key("d/a"), []byte("1"), nil)
	ch, err := watcher.WatchTree(e.ctx, dir)
	if err != nil {
		e.Fatalf("WatchTree: %v", err)
	}
	e.wantTreeEvent(ch, "first event", kv{"d/a", "1"})

	e.put(writer, e.key("d/b/c/d"), []byte("deep"), nil)
	e.wantTreeEvent(ch, "Put of a deep key", kv{"d/a", "1"}, kv{"d/b/c/d", "deep"})
	e.put(writer, e.key("d/a"), []byte("2"), nil)
	e.wantTreeEvent(ch, "update", kv{"d/a", "2"}, kv{"d/b/c/d", "deep"})
	e.put(writer, e.key("d/b"), []byte("mid"), nil)
	e.wantTreeEvent(ch, "Put of a key on the path of another", kv{"d/a", "2"}, kv{"d/b", "mid"}, kv{"d/b/c/d", "deep"})
	e.del(writer, e.key("d/a"))
	e.wantTreeEvent(ch, "Delete", kv{"d/b", "mid"}, kv{"d/b/c/d", "deep"})
	e.del(writer, e.key("d/b/c/d"))
	e.wantTreeEvent(ch, "Delete of the deep key", kv{"d/b", "mid"})
	ok, p, err := writer.AtomicPut(e.ctx, e.key("d/n"), []byte("n"), nil, nil)
	if err != nil || !ok {
		e.Fatalf("AtomicPut: %v, %v", ok, err)
	}
	e.wantTreeEvent(ch, "AtomicPut", kv{"d/b", "mid"}, kv{"d/n", "n"})
	if ok, err := writer.AtomicDelete(e.ctx, e.key("d/n"), p); err != nil || !ok {
		e.Fatalf("AtomicDelete: %v, %v", ok, err)
	}
	e.wantTreeEvent(ch, "AtomicDelete", kv{"d/b", "mid"})
	e.put(watcher, e.key("d/e"), nil, nil)
	e.wantTreeEvent(ch, "Put of an empty value by the watching client", kv{"d/b", "mid"}, kv{"d/e", ""})

	// DeleteTree may arrive as one event or as several, each a subset of the one before.
	e.put(writer, e.key("d/f/g"), []byte("g"), nil)
	e.wantTreeEvent(ch, "Put", kv{"d/b", "mid"}, kv{"d/e", ""}, kv{"d/f/g", "g"})
	before := []kv{{"d/b", "mid"}, {"d/e", ""}, {"d/f/g", "g"}}
	if err := writer.DeleteTree(e.ctx, dir); err != nil {
		e.Fatalf("DeleteTree: %v", err)
	}
	e.awaitTree(ch, "DeleteTree", func(got []kv) bool {
		for _, g := range got {
			if !slices.Contains(before, g) {
				return false
			}
		}
		before = got
		return true
	})
	e.put(writer, e.key("d/h"), []byte("h"), nil)
	e.wantTreeEvent(ch, "Put after DeleteTree", kv{"d/h", "h"})
}

// Changes outside the directory — the directory key itself, string-prefix siblings, parents —
// never show up in its WatchTree.
func testWatchTreeIgnoresOutside(e *env) {
	st := e.open()
	e.put(st, e.key("d/a"), []byte("a"), nil)
	ch, err := st.WatchTree(e.ctx, e.key("d"))
	if err != nil {
		e.Fatalf("WatchTree: %v", err)
	}
	e.wantTreeEvent(ch, "first event", kv{"d/a", "a"})
	for _, k := range []string{"d", "dx", "d-1/a", "d2/x", "e", "c"} {
		e.put(st, e.key(k), []byte("outside"), nil)
	}
	e.del(st, e.key("dx"))
	e.put(st, e.key("d"), []byte("outside again"), nil)
	// The marker is the only change below d: the next new list must be exactly this one. A
	// repeat of the current list is tolerated (some stores wake watchers for neighbours), a
	// list with an outside key is not.
	e.put(st, e.key("d/z"), []byte("marker"), nil)
	dups := 0
	e.awaitTree(ch, "after changes outside and a marker inside", func(got []kv) bool {
		dups++
		return slices.Equal(got, []kv{{"d/a", "a"}})
	}, kv{"d/a", "a"}, kv{"d/z", "marker"})
	if dups > 0 {
		e.Logf("WatchTree repeated the unchanged list %d times for changes outside the directory", dups)
	}
}

func testWatchTreeClosesOnCancel(e *env) {
	st := e.open()
	ctx, cancel := context.WithCancel(e.ctx)
	ch, err := st.WatchTree(ctx, e.key("d"))
	if err != nil {
		e.Fatalf("WatchTree: %v", err)
	}
	e.wantTreeEvent(ch, "first event")
	// Never read, so that a sender blocked on it stays behind for the goroutine check.
	ctx2, cancel2 := context.WithCancel(e.ctx)
	if _, err := st.WatchTree(ctx2, e.key("other")); err != nil {
		e.Fatalf("WatchTree(other): %v", err)
	}
	cancel2()
	cancel()
	if !closedWithin(ch, eventTimeout) {
		e.Fatalf("WatchTree channel still open %v after its ctx was cancelled", eventTimeout)
	}
	e.put(st, e.key("d/a"), []byte("after"), nil)
	e.wantList(st, e.key("d"), kv{"d/a", "after"})
}

func testWatchTreeClosesOnClose(e *env) {
	st := e.open()
	ch, err := st.WatchTree(e.ctx, e.key("d"))
	if err != nil {
		e.Fatalf("WatchTree: %v", err)
	}
	e.wantTreeEvent(ch, "first event")
	if err := st.Close(); err != nil {
		e.Errorf("Close: %v", err)
	}
	if !closedWithin(ch, eventTimeout) {
		e.Fatalf("WatchTree channel still open %v after the store was closed", eventTimeout)
	}
}
