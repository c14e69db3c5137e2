package kvtest

import (
	"errors"
	"strings"

	"github.com/kvop/kvop/pkg/kvstore"
)

func errorSubtests() []subtest {
	return []subtest{
		{"ErrorsWrapped", testErrorsWrapped},
		{"ClosedStore", testClosedStore},
	}
}

// wantWrapped checks that err is a *kvstore.Error naming the backend and (when key is not
// empty) the normalised key, in its fields and its message, and that it matches sentinel.
func (e *env) wantWrapped(err, sentinel error, key, what string) {
	e.Helper()
	if !errors.Is(err, sentinel) {
		e.Errorf("%s: error %v, want %v", what, err, sentinel)
		return
	}
	var ke *kvstore.Error
	if !errors.As(err, &ke) {
		e.Errorf("%s: error %T %q is not a *kvstore.Error", what, err, err)
		return
	}
	if ke.Backend != e.s.Backend {
		e.Errorf("%s: Error.Backend = %q, want %q", what, ke.Backend, e.s.Backend)
	}
	msg := err.Error()
	if !strings.Contains(msg, string(e.s.Backend)) {
		e.Errorf("%s: message %q does not name the backend %q", what, msg, e.s.Backend)
	}
	if key == "" {
		return
	}
	if ke.Key != norm(key) {
		e.Errorf("%s: Error.Key = %q, want %q", what, ke.Key, norm(key))
	}
	if !strings.Contains(msg, norm(key)) {
		e.Errorf("%s: message %q does not name the key %q", what, msg, norm(key))
	}
}

// Every error is a *kvstore.Error that names the backend and the key and wraps the sentinel.
func testErrorsWrapped(e *env) {
	st := e.open()
	k := e.key("k")
	_, err := st.Get(e.ctx, "/"+k+"/")
	e.wantWrapped(err, kvstore.ErrKeyNotFound, k, "Get(absent)")
	_, err = st.List(e.ctx, k)
	e.wantWrapped(err, kvstore.ErrKeyNotFound, k, "List(empty)")

	e.put(st, k, []byte("v1"), nil)
	old := e.get(st, k)
	_, _, err = st.AtomicPut(e.ctx, k, []byte("x"), nil, nil)
	e.wantWrapped(err, kvstore.ErrKeyExists, k, "AtomicPut(present, nil previous)")
	e.put(st, k, []byte("v2"), nil)
	_, _, err = st.AtomicPut(e.ctx, k, []byte("x"), old, nil)
	e.wantWrapped(err, kvstore.ErrKeyModified, k, "AtomicPut(stale)")
	_, err = st.AtomicDelete(e.ctx, k, old)
	e.wantWrapped(err, kvstore.ErrKeyModified, k, "AtomicDelete(stale)")
	_, err = st.AtomicDelete(e.ctx, k, nil)
	e.wantWrapped(err, kvstore.ErrPreviousNotSpecified, k, "AtomicDelete(nil previous)")
	e.del(st, k)
	_, _, err = st.AtomicPut(e.ctx, k, []byte("x"), old, nil)
	e.wantWrapped(err, kvstore.ErrKeyNotFound, k, "AtomicPut(gone)")
	_, err = st.AtomicDelete(e.ctx, k, old)
	e.wantWrapped(err, kvstore.ErrKeyNotFound, k, "AtomicDelete(gone)")

	bad := e.key("a/../b")
	e.wantWrapped(st.Put(e.ctx, bad, nil, nil), kvstore.ErrInvalidKey, "", "Put(invalid key)")
	if err := st.Put(e.ctx, bad, nil, nil); err != nil && !strings.Contains(err.Error(), "..") {
		e.Errorf("Put(invalid key): message %q does not say what is wrong with the key", err)
	}
	_, err = st.Get(e.ctx, "")
	e.wantWrapped(err, kvstore.ErrInvalidKey, "", "Get(empty key)")

	lk := e.key("lock")
	l := e.newLock(st, lk, "v", e.ttl())
	e.wantWrapped(l.Unlock(e.ctx), kvstore.ErrNotLocked, lk, "Unlock(not locked)")
}

// After Close every method fails with ErrClosed (wrapped, never a panic), and Close again does
// not panic.
func testClosedStore(e *env) {
	st, err := kvstore.New(e.ctx, e.s.Backend, e.s.Addrs, e.s.Config)
	if err != nil {
		e.Fatalf("New: %v", err)
	}
	k := e.key("k")
	if err := st.Put(e.ctx, k, []byte("v"), nil); err != nil {
		e.Fatalf("Put: %v", err)
	}
	p, err := st.Get(e.ctx, k)
	if err != nil {
		e.Fatalf("Get: %v", err)
	}
	l, err := st.NewLock(e.ctx, e.key("lock"), nil)
	if err != nil {
		e.Fatalf("NewLock: %v", err)
	}
	if err := st.Close(); err != nil {
		e.Errorf("Close: %v", err)
	}
	closed := func(err error, what string) {
		e.Helper()
		e.wantWrapped(err, kvstore.ErrClosed, "", what+" after Close")
	}
	closed(st.Put(e.ctx, k, []byte("v"), nil), "Put")
	_, err = st.Get(e.ctx, k)
	closed(err, "Get")
	closed(st.Delete(e.ctx, k), "Delete")
	_, err = st.Exists(e.ctx, k)
	closed(err, "Exists")
	_, err = st.Watch(e.ctx, k)
	closed(err, "Watch")
	_, err = st.WatchTree(e.ctx, e.prefix)
	closed(err, "WatchTree")
	_, err = st.NewLock(e.ctx, k, nil)
	closed(err, "NewLock")
	_, err = st.List(e.ctx, e.prefix)
	closed(err, "List")
	closed(st.DeleteTree(e.ctx, e.prefix), "DeleteTree")
	_, _, err = st.AtomicPut(e.ctx, k, []byte("v"), p, nil)
	closed(err, "AtomicPut")
	_, err = st.AtomicDelete(e.ctx, k, p)
	closed(err, "AtomicDelete")
	_, err = l.Lock(e.ctx)
	closed(err, "Lock")
	_ = st.Close() // a second Close may say ErrClosed or nil, but must not panic

	other := e.open()
	e.wantValue(other, k, []byte("v"))
}
