package kvtest

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/kvop/kvop/pkg/kvstore"
)

func keySubtests() []subtest {
	return []subtest{
		{"KeysNormalised", testKeysNormalised},
		{"KeyCharacters", testKeyCharacters},
		{"InvalidKeys", testInvalidKeys},
		{"PutGetRoundTrip", testPutGetRoundTrip},
		{"EmptyValue", testEmptyValue},
		{"GetAbsent", testGetAbsent},
		{"Exists", testExists},
		{"DeleteIdempotent", testDeleteIdempotent},
		{"ParentPathIsNotAKey", testParentPathIsNotAKey},
		{"KeyAndDirectoryShareName", testKeyAndDirectoryShareName},
		{"TwoClientsShareData", testTwoClientsShareData},
	}
}

// "/a/b/", "a/b" and "/a/b" are one key, on every method, and returned keys carry no slashes.
func testKeysNormalised(e *env) {
	st := e.open()
	key := e.key("a/b")
	spellings := []string{key, "/" + key, key + "/", "/" + key + "/", "//" + e.prefix + "//a//b//"}

	e.put(st, "/"+key+"/", []byte("v1"), nil)
	for _, k := range spellings {
		e.wantValue(st, k, []byte("v1"))
		if !e.exists(st, k) {
			e.Errorf("Exists(%q) = false after Put(%q)", k, "/"+key+"/")
		}
	}
	// Writing through another spelling replaces the same key instead of adding one.
	e.put(st, key, []byte("v2"), nil)
	e.wantList(st, "/"+e.prefix+"/", kv{"a/b", "v2"})
	e.wantList(st, e.prefix+"/a/", kv{"a/b", "v2"})

	ok, p, err := st.AtomicPut(e.ctx, "/"+e.key("c")+"/", []byte("c"), nil, nil)
	if err != nil || !ok {
		e.Fatalf("AtomicPut(/c/) = %v, %v", ok, err)
	}
	e.checkPair(p, e.key("c"), []byte("c"), "AtomicPut")

	ch, err := st.Watch(e.ctx, "/"+key+"/")
	if err != nil {
		e.Fatalf("Watch: %v", err)
	}
	e.checkPair(e.nextPair(ch, "Watch(/a/b/) first event"), key, []byte("v2"), "Watch")
	tree, err := st.WatchTree(e.ctx, e.prefix+"/")
	if err != nil {
		e.Fatalf("WatchTree: %v", err)
	}
	e.wantTreeEvent(tree, "WatchTree(prefix/) first event", kv{"a/b", "v2"}, kv{"c", "c"})

	if ok, err := st.AtomicDelete(e.ctx, "/"+e.key("c"), p); err != nil || !ok {
		e.Errorf("AtomicDelete(/c) = %v, %v", ok, err)
	}
	e.del(st, key+"/")
	for _, k := range spellings {
		e.wantAbsent(st, k)
	}
	e.expectAbsentEvent(ch, "Watch after Delete(a/b/)")
}

// Keys made of characters that URLs, paths or JSON treat specially are stored as they are.
func testKeyCharacters(e *env) {
	st := e.open()
	names := []string{
		"sp ace", "per%25cent", "per%cent", "q?mark=1&x", "hash#tag", "colon:x", "at@x",
		"plus+x", "semi;x", "comma,x", "tilde~x", "quote'x", "dquote\"x", "back\\slash",
		"dollar$x", "star*x", "paren(x)", "brack[x]", "ümlaut", "日本", "Case", "case",
		"dot.x", "..x", "x..", "-dash", "_under",
	}
	var want []kv
	for i, n := range names {
		v := []byte{byte('a' + i%26), byte(i)}
		e.put(st, e.key("chars/"+n), v, nil)
		want = append(want, kv{"chars/" + n, string(v)})
	}
	for _, w := range want {
		e.wantValue(st, e.key(w.k), []byte(w.v))
	}
	sortKVs(want)
	e.wantList(st, e.key("chars"), want...)
	for _, w := range want {
		e.del(st, e.key(w.k))
	}
	e.wantListEmpty(st, e.key("chars"))
}

// Empty keys and keys with "." or ".." segments or NUL bytes fail with ErrInvalidKey on every
// method, and nothing is written.
func testInvalidKeys(e *env) {
	st := e.open()
	e.put(st, e.key("b"), []byte("kept"), nil)
	bad := []string{"", "/", "//", e.key("a/../b"), e.key("./x"), e.key("x/."), e.key("x/.."), e.key("nul\x00x")}
	prev := &kvstore.KVPair{Key: e.key("x"), Value: []byte("x"), LastIndex: 1}
	for _, k := range bad {
		e.wantErr(st.Put(e.ctx, k, []byte("v"), nil), kvstore.ErrInvalidKey, "Put(%q)", k)
		e.wantErr(st.Put(e.ctx, k, []byte("v"), &kvstore.WriteOptions{TTL: e.ttl(), KeepAlive: true}),
			kvstore.ErrInvalidKey, "Put(%q, TTL, KeepAlive)", k)
		_, err := st.Get(e.ctx, k)
		e.wantErr(err, kvstore.ErrInvalidKey, "Get(%q)", k)
		e.wantErr(st.Delete(e.ctx, k), kvstore.ErrInvalidKey, "Delete(%q)", k)
		_, err = st.Exists(e.ctx, k)
		e.wantErr(err, kvstore.ErrInvalidKey, "Exists(%q)", k)
		_, err = st.Watch(e.ctx, k)
		e.wantErr(err, kvstore.ErrInvalidKey, "Watch(%q)", k)
		_, err = st.WatchTree(e.ctx, k)
		e.wantErr(err, kvstore.ErrInvalidKey, "WatchTree(%q)", k)
		_, err = st.NewLock(e.ctx, k, nil)
		e.wantErr(err, kvstore.ErrInvalidKey, "NewLock(%q)", k)
		_, err = st.List(e.ctx, k)
		e.wantErr(err, kvstore.ErrInvalidKey, "List(%q)", k)
		// DeleteTree("/") above all must not empty the store.
		e.wantErr(st.DeleteTree(e.ctx, k), kvstore.ErrInvalidKey, "DeleteTree(%q)", k)
		_, _, err = st.AtomicPut(e.ctx, k, []byte("v"), nil, nil)
		e.wantErr(err, kvstore.ErrInvalidKey, "AtomicPut(%q, nil)", k)
		_, _, err = st.AtomicPut(e.ctx, k, []byte("v"), prev, nil)
		e.wantErr(err, kvstore.ErrInvalidKey, "AtomicPut(%q, previous)", k)
		_, err = st.AtomicDelete(e.ctx, k, prev)
		e.wantErr(err, kvstore.ErrInvalidKey, "AtomicDelete(%q)", k)
	}
	// "a/../b" must not have been cleaned into "b", nor anything else written.
	e.wantList(st, e.prefix, kv{"b", "kept"})
}

// Put then Get returns the same bytes, whatever they are; the store keeps its own copy.
func testPutGetRoundTrip(e *env) {
	st := e.open()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := make([]byte, 32<<10)
	for i := range big {
		big[i] = byte(rand.IntN(256))
	}
	values := map[string][]byte{
		"text":   []byte("hello"),
		"utf8":   []byte("héllo ✓ 日本"),
		"binary": all,
		"nul":    {0},
		"ff":     {0xff, 0xfe, 0x00, 0x80},
		"json":   []byte(`{"a":[1,"x"]}`),
		"space":  []byte("  \n\t "),
		"big":    big,
	}
	for name, v := range values {
		k := e.key(name)
		e.put(st, k, v, nil)
		p := e.wantValue(st, k, v)
		if p.LastIndex == 0 {
			e.Errorf("Get(%s): LastIndex is 0", name)
		}
	}

	// The store must not keep the caller's slice, nor hand out its own memory.
	k := e.key("copy")
	v := []byte("original")
	e.put(st, k, v, nil)
	copy(v, "CHANGED!")
	p := e.wantValue(st, k, []byte("original"))
	copy(p.Value, "CHANGED!")
	e.wantValue(st, k, []byte("original"))

	// Overwriting changes the value and moves LastIndex forward.
	e.put(st, k, []byte("second"), nil)
	p2 := e.wantValue(st, k, []byte("second"))
	if p2.LastIndex <= p.LastIndex {
		e.Errorf("LastIndex went from %d to %d on overwrite; it must grow with every change", p.LastIndex, p2.LastIndex)
	}
}

// An empty value is a value: the key is present with zero bytes, on every read path.
func testEmptyValue(e *env) {
	st := e.open()
	for name, v := range map[string][]byte{"empty": {}, "nil": nil} {
		k := e.key("d/" + name)
		e.put(st, k, v, nil)
		p := e.get(st, k)
		if len(p.Value) != 0 {
			e.Errorf("Get(%s) = %s, want an empty value", name, show(p.Value))
		}
		if !e.exists(st, k) {
			e.Errorf("Exists(%s) = false for a key with an empty value", name)
		}
		ch, err := st.Watch(e.ctx, k)
		if err != nil {
			e.Fatalf("Watch(%s): %v", name, err)
		}
		if ev := e.nextPair(ch, "Watch(empty value) first event"); ev == nil || len(ev.Value) != 0 {
			e.Errorf("Watch(%s) first event = %s, want the pair with an empty value", name, showPair(ev))
		}
		// Overwriting with an empty value is a change, and the key stays.
		e.put(st, k, []byte("x"), nil)
		e.put(st, k, nil, nil)
		e.checkPair(e.get(st, k), k, nil, "Get after re-emptying")
	}
	e.wantList(st, e.key("d"), kv{"d/empty", ""}, kv{"d/nil", ""})

	k := e.key("atomic")
	ok, p, err := st.AtomicPut(e.ctx, k, nil, nil, nil)
	if err != nil || !ok {
		e.Fatalf("AtomicPut(empty, nil previous) = %v, %v", ok, err)
	}
	e.checkPair(p, k, nil, "AtomicPut")
	_, _, err = st.AtomicPut(e.ctx, k, []byte("x"), nil, nil)
	e.wantErr(err, kvstore.ErrKeyExists, "AtomicPut(nil previous) on a key with an empty value")
	ok, p2, err := st.AtomicPut(e.ctx, k, []byte{}, p, nil)
	if err != nil || !ok {
		e.Fatalf("AtomicPut(empty, previous) = %v, %v", ok, err)
	}
	e.checkPair(p2, k, nil, "AtomicPut")
	if ok, err := st.AtomicDelete(e.ctx, k, p2); err != nil || !ok {
		e.Errorf("AtomicDelete of an empty value = %v, %v", ok, err)
	}
	e.wantAbsent(st, k)
}

func testGetAbsent(e *env) {
	st := e.open()
	e.wantAbsent(st, e.key("never"))
	e.wantAbsent(st, e.key("never/deeper/still"))
	e.put(st, e.key("gone"), []byte("v"), nil)
	e.del(st, e.key("gone"))
	p, err := st.Get(e.ctx, e.key("gone"))
	if !errors.Is(err, kvstore.ErrKeyNotFound) || p != nil {
		e.Errorf("Get after Delete = %s, %v; want nil, ErrKeyNotFound", showPair(p), err)
	}
}

func testExists(e *env) {
	st := e.open()
	k := e.key("k")
	if e.exists(st, k) {
		e.Errorf("Exists of a key never written = true")
	}
	e.put(st, k, []byte("v"), nil)
	if !e.exists(st, k) {
		e.Errorf("Exists after Put = false")
	}
	e.del(st, k)
	if e.exists(st, k) {
		e.Errorf("Exists after Delete = true")
	}
}

func testDeleteIdempotent(e *env) {
	st := e.open()
	k := e.key("k")
	e.del(st, k)
	e.del(st, e.key("never/deeper"))
	e.put(st, k, []byte("v"), nil)
	e.del(st, k)
	e.del(st, k)
	e.wantAbsent(st, k)
	e.wantListEmpty(st, e.prefix)
}

// A path that is only a parent of keys is not a key: not readable, not listed, watched as nil,
// and deleting it leaves the keys below it alone.
func testParentPathIsNotAKey(e *env) {
	st := e.open()
	leaf := e.key("p/a/b/c")
	e.put(st, leaf, []byte("leaf"), nil)
	for _, parent := range []string{e.key("p"), e.key("p/a"), e.key("p/a/b")} {
		e.wantAbsent(st, parent)
	}
	e.wantList(st, e.prefix, kv{"p/a/b/c", "leaf"})
	e.wantList(st, e.key("p/a"), kv{"p/a/b/c", "leaf"})

	parent := e.key("p/a/b")
	ch, err := st.Watch(e.ctx, parent)
	if err != nil {
		e.Fatalf("Watch(parent): %v", err)
	}
	e.expectAbsentEvent(ch, "Watch(parent-only path) first event")
	// Changes below the parent are not changes of the parent: the next event must be the
	// parent's own Put.
	e.put(st, leaf, []byte("leaf2"), nil)
	e.put(st, e.key("p/a/b/d"), []byte("d"), nil)
	e.del(st, e.key("p/a/b/d"))
	_, _, err = st.AtomicPut(e.ctx, parent, []byte("now a key"), nil, nil)
	if err != nil {
		e.Fatalf("AtomicPut(nil previous) on a parent-only path: %v (a parent-only path is absent)", err)
	}
	e.expectValueEvent(ch, parent, []byte("now a key"), "Watch(parent) after it became a key")
	e.wantList(st, e.prefix, kv{"p/a/b", "now a key"}, kv{"p/a/b/c", "leaf2"})

	// Deleting the key (which still has keys below it) removes only that key.
	e.del(st, parent)
	e.expectAbsentEvent(ch, "Watch(parent) after its Delete")
	e.wantAbsent(st, parent)
	e.wantValue(st, leaf, []byte("leaf2"))
	// Deleting parent-only paths succeeds and removes nothing.
	e.del(st, e.key("p/a"))
	e.del(st, e.key("p"))
	e.wantList(st, e.prefix, kv{"p/a/b/c", "leaf2"})

	// Once the last key below is gone, nothing is left behind: not a key, not in a List.
	e.del(st, leaf)
	for _, k := range []string{e.key("p"), e.key("p/a"), parent, leaf} {
		e.wantAbsent(st, k)
	}
	e.wantListEmpty(st, e.prefix)
}

// "x" and "x/y" both hold values, whichever is written first.
func testKeyAndDirectoryShareName(e *env) {
	st := e.open()
	e.put(st, e.key("x"), []byte("x"), nil)
	e.put(st, e.key("x/y"), []byte("xy"), nil)
	e.put(st, e.key("z/w"), []byte("zw"), nil)
	e.put(st, e.key("z"), []byte("z"), nil)
	e.wantValue(st, e.key("x"), []byte("x"))
	e.wantValue(st, e.key("x/y"), []byte("xy"))
	e.wantValue(st, e.key("z"), []byte("z"))
	e.wantValue(st, e.key("z/w"), []byte("zw"))
	e.wantList(st, e.prefix, kv{"x", "x"}, kv{"x/y", "xy"}, kv{"z", "z"}, kv{"z/w", "zw"})
	e.wantList(st, e.key("x"), kv{"x/y", "xy"})

	// Updating one leaves the other alone.
	e.put(st, e.key("x"), []byte("x2"), nil)
	e.wantValue(st, e.key("x/y"), []byte("xy"))
	e.put(st, e.key("z/w"), []byte("zw2"), nil)
	e.wantValue(st, e.key("z"), []byte("z"))

	// DeleteTree(x) removes what is below x, not x; Delete(z) removes z, not what is below.
	if err := st.DeleteTree(e.ctx, e.key("x")); err != nil {
		e.Fatalf("DeleteTree(x): %v", err)
	}
	e.del(st, e.key("z"))
	e.wantList(st, e.prefix, kv{"x", "x2"}, kv{"z/w", "zw2"})
}

// Two independent clients see each other's writes.
func testTwoClientsShareData(e *env) {
	a, b := e.open(), e.open()
	k := e.key("k")
	e.put(a, k, []byte("from a"), nil)
	pb := e.wantValue(b, k, []byte("from a"))
	pa := e.get(a, k)
	if pa.LastIndex != pb.LastIndex {
		e.Errorf("the clients disagree on LastIndex: %d and %d", pa.LastIndex, pb.LastIndex)
	}
	ok, _, err := b.AtomicPut(e.ctx, k, []byte("from b"), pa, nil)
	if err != nil || !ok {
		e.Fatalf("AtomicPut on b with a's previous = %v, %v", ok, err)
	}
	e.wantValue(a, k, []byte("from b"))
	e.del(a, k)
	if e.exists(b, k) {
		e.Errorf("b still sees the key a deleted")
	}
	e.wantListEmpty(b, e.prefix)
}

// sortKVs sorts by key (byte order), as List must.
func sortKVs(s []kv) { slices.SortFunc(s, func(a, b kv) int { return strings.Compare(a.k, b.k) }) }
