package kvtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Time limits. The suite asserts the contract's bounds exactly (TTL bounds, the 1s lock
// wake-up); the limits here only keep a broken backend from hanging the run, so they are
// generous enough for -race on a loaded two-core machine.
const (
	defaultTTL     = 2 * time.Second
	subtestTimeout = 3 * time.Minute
	// eventTimeout is how long a Watch or WatchTree event may take after the change.
	eventTimeout = 10 * time.Second
	// pollInterval paces the polling of deadline-driven waits.
	pollInterval = 50 * time.Millisecond
	// wakeBound is the contract's "Unlock wakes a waiting Lock promptly": watch-driven, < 1s.
	wakeBound = time.Second
	// lostBound is how soon a holder must notice that its lock key was deleted, and how soon a
	// closed client's lock must be free again. Both are watch- or request-driven, not TTL-driven.
	lostBound = 5 * time.Second
)

// env is what one subtest works with: its own key prefix, a context that ends with it, and
// helpers that fail it.
type env struct {
	*testing.T
	s      Suite
	ctx    context.Context
	prefix string // every key of the subtest lies below it
	run    string // -test.run pattern of the test that called Run
}

func newEnv(t *testing.T, s Suite, prefix, run string) *env {
	ctx, cancel := context.WithTimeout(t.Context(), subtestTimeout)
	t.Cleanup(cancel)
	return &env{T: t, s: s, ctx: ctx, prefix: prefix, run: run}
}

// key returns the subtest's key for rel (joined by hand: path.Join would clean "a/../b").
func (e *env) key(rel string) string { return e.prefix + "/" + rel }

// bound is how long after its last write a key with ttl may still be seen.
func (e *env) bound(ttl time.Duration) time.Duration {
	if e.s.TTLBound != nil {
		return e.s.TTLBound(ttl)
	}
	var session time.Duration
	if e.s.Config != nil {
		session = e.s.Config.SessionTimeout
	}
	return kvstore.TTLBound(e.s.Backend, ttl, session)
}

func (e *env) ttl() time.Duration { return e.s.TTL }

// open opens an independent client that is closed when the subtest ends. Closing it earlier
// is fine: the cleanup closes it only once.
func (e *env) open() kvstore.Store {
	e.Helper()
	return e.openAt(e.s.Addrs)
}

func (e *env) openAt(addrs []string) kvstore.Store {
	e.Helper()
	st, err := kvstore.New(e.ctx, e.s.Backend, addrs, e.s.Config)
	if err != nil {
		e.Fatalf("kvstore.New(%s, %q): %v", e.s.Backend, addrs, err)
	}
	if st == nil {
		e.Fatalf("kvstore.New(%s, %q) returned a nil Store and no error", e.s.Backend, addrs)
	}
	c := &closeOnce{Store: st}
	e.Cleanup(func() {
		if err := c.Close(); err != nil && !errors.Is(err, kvstore.ErrClosed) {
			e.Errorf("Close: %v", err)
		}
	})
	return c
}

// closeOnce lets a subtest close a store itself while the cleanup still closes every store.
type closeOnce struct {
	kvstore.Store
	once sync.Once
	err  error
}

func (c *closeOnce) Close() error {
	c.once.Do(func() { c.err = c.Store.Close() })
	return c.err
}

// --- assertions -------------------------------------------------------------------------

func (e *env) put(st kvstore.Store, key string, value []byte, opts *kvstore.WriteOptions) {
	e.Helper()
	if err := st.Put(e.ctx, key, value, opts); err != nil {
		e.Fatalf("Put(%q): %v", key, err)
	}
}

func (e *env) get(st kvstore.Store, key string) *kvstore.KVPair {
	e.Helper()
	p, err := st.Get(e.ctx, key)
	if err != nil {
		e.Fatalf("Get(%q): %v", key, err)
	}
	if p == nil {
		e.Fatalf("Get(%q) returned a nil pair and no error", key)
	}
	return p
}

func (e *env) del(st kvstore.Store, key string) {
	e.Helper()
	if err := st.Delete(e.ctx, key); err != nil {
		e.Fatalf("Delete(%q): %v", key, err)
	}
}

func (e *env) exists(st kvstore.Store, key string) bool {
	e.Helper()
	ok, err := st.Exists(e.ctx, key)
	if err != nil {
		e.Fatalf("Exists(%q): %v", key, err)
	}
	return ok
}

// wantValue checks that key holds value (and that the pair names the normalised key).
func (e *env) wantValue(st kvstore.Store, key string, value []byte) *kvstore.KVPair {
	e.Helper()
	p := e.get(st, key)
	e.checkPair(p, key, value, "Get")
	return p
}

// checkPair checks a pair's key (normalised) and value.
func (e *env) checkPair(p *kvstore.KVPair, key string, value []byte, what string) {
	e.Helper()
	if p == nil {
		e.Fatalf("%s: pair is nil, want %q=%s", what, key, show(value))
	}
	want := norm(key)
	if p.Key != want {
		e.Errorf("%s: pair key is %q, want %q (normalised)", what, p.Key, want)
	}
	if !bytes.Equal(p.Value, value) {
		e.Errorf("%s %q: value is %s, want %s", what, want, show(p.Value), show(value))
	}
}

// wantAbsent checks that Get says ErrKeyNotFound and Exists says false.
func (e *env) wantAbsent(st kvstore.Store, key string) {
	e.Helper()
	p, err := st.Get(e.ctx, key)
	if !errors.Is(err, kvstore.ErrKeyNotFound) {
		e.Errorf("Get(%q) = %v, %v; want ErrKeyNotFound", key, showPair(p), err)
	}
	if e.exists(st, key) {
		e.Errorf("Exists(%q) = true, want false", key)
	}
}

// wantErr fails unless errors.Is(err, target).
func (e *env) wantErr(err, target error, format string, args ...any) {
	e.Helper()
	if !errors.Is(err, target) {
		e.Errorf("%s: error %v, want %v", fmt.Sprintf(format, args...), err, target)
	}
}

// wantList checks that List(dir) returns exactly want (keys relative to the prefix), in order.
func (e *env) wantList(st kvstore.Store, dir string, want ...kv) []*kvstore.KVPair {
	e.Helper()
	got, err := st.List(e.ctx, dir)
	if err != nil {
		e.Fatalf("List(%q): %v", dir, err)
	}
	if g := e.rel(got); !slices.Equal(g, want) {
		e.Errorf("List(%q) =\n\t%v\nwant\n\t%v", dir, g, want)
	}
	return got
}

func (e *env) wantListEmpty(st kvstore.Store, dir string) {
	e.Helper()
	got, err := st.List(e.ctx, dir)
	if !errors.Is(err, kvstore.ErrKeyNotFound) {
		e.Errorf("List(%q) = %v, %v; want ErrKeyNotFound", dir, e.rel(got), err)
	}
}

// kv is a pair as the suite compares it: key relative to the subtest prefix, value as text.
type kv struct{ k, v string }

func (p kv) String() string { return fmt.Sprintf("%s=%q", p.k, p.v) }

// rel turns pairs into kvs relative to the subtest prefix (keys outside it keep a "!" mark).
func (e *env) rel(pairs []*kvstore.KVPair) []kv {
	out := make([]kv, 0, len(pairs))
	for _, p := range pairs {
		if p == nil {
			out = append(out, kv{k: "<nil pair>"})
			continue
		}
		k, ok := strings.CutPrefix(p.Key, e.prefix+"/")
		if !ok {
			k = "!" + p.Key
		}
		out = append(out, kv{k, string(p.Value)})
	}
	return out
}

// eventually polls cond until it holds or deadline passes. A poll that started after the
// deadline and still failed fails the subtest, so the deadline is asserted exactly.
func (e *env) eventually(deadline time.Time, what string, cond func() bool) time.Time {
	e.Helper()
	for {
		start := time.Now()
		if cond() {
			return start
		}
		if start.After(deadline) {
			e.Fatalf("%s: still not true %v after the deadline", what, time.Since(deadline).Round(time.Millisecond))
		}
		select {
		case <-time.After(pollInterval):
		case <-e.ctx.Done():
			e.Fatalf("%s: %v", what, e.ctx.Err())
		}
	}
}

// throughout polls cond until until; it must hold at every poll.
func (e *env) throughout(until time.Time, what string, cond func() bool) {
	e.Helper()
	for time.Now().Before(until) {
		if !cond() {
			e.Fatalf("%s: stopped holding %v before the end of the period", what, time.Until(until).Round(time.Millisecond))
		}
		select {
		case <-time.After(pollInterval):
		case <-e.ctx.Done():
			e.Fatalf("%s: %v", what, e.ctx.Err())
		}
	}
}

// closedWithin waits for ch to be closed, draining whatever it still sends.
func closedWithin[T any](ch <-chan T, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return true
			}
		case <-timer.C:
			return false
		}
	}
}

// isClosed reports whether a struct{} channel is closed right now.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func norm(key string) string {
	n, err := kvstore.NormalizeKey(key)
	if err != nil {
		return key
	}
	return n
}

func show(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q...(%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}

func showPair(p *kvstore.KVPair) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("{%q %s @%d}", p.Key, show(p.Value), p.LastIndex)
}
