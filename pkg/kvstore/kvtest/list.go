package kvtest

import "github.com/kvop/kvop/pkg/kvstore"

func listSubtests() []subtest {
	return []subtest{
		{"ListBelowDirectory", testListBelowDirectory},
		{"ListNothingBelow", testListNothingBelow},
		{"DeleteTree", testDeleteTree},
		{"DeleteTreeIdempotent", testDeleteTreeIdempotent},
	}
}

// listLayout writes keys below "d" at several depths, the directory key itself, and keys
// outside it whose names start with the same string ("dx", "d-1"), which are not below "d".
// "d/a-b" sorts between "d/a" and "d/a/b" ('-' < '/'), which a tree walk gets wrong.
func (e *env) listLayout(st kvstore.Store) {
	e.Helper()
	for _, k := range []string{"d/z", "d/a/b", "d/a", "d/b/c/d/e", "d/a-b", "d", "dx", "d-1", "d2/a", "e/a", "c"} {
		e.put(st, e.key(k), []byte("v:"+k), nil)
	}
}

func v(k string) kv { return kv{k, "v:" + k} }

// List returns every key strictly below the directory at any depth, sorted, with the same
// LastIndex Get reports; never the directory itself or a sibling sharing its string prefix.
func testListBelowDirectory(e *env) {
	st := e.open()
	e.listLayout(st)
	below := []kv{v("d/a"), v("d/a-b"), v("d/a/b"), v("d/b/c/d/e"), v("d/z")}
	for _, dir := range []string{e.key("d"), "/" + e.key("d") + "/"} {
		got := e.wantList(st, dir, below...)
		for _, p := range got {
			if g := e.get(st, p.Key); g.LastIndex != p.LastIndex {
				e.Errorf("List pair %s: LastIndex %d, Get says %d", p.Key, p.LastIndex, g.LastIndex)
			}
		}
	}
	e.wantList(st, e.key("d/a"), v("d/a/b")) // not d/a-b
	e.wantList(st, e.key("d/b"), v("d/b/c/d/e"))
	e.wantList(st, e.key("d/b/c/d"), v("d/b/c/d/e"))
	e.wantList(st, e.prefix, append([]kv{v("c"), v("d"), v("d-1")}, append(below, v("d2/a"), v("dx"), v("e/a"))...)...)
}

// List says ErrKeyNotFound when nothing is below: a directory never written, a key without
// keys below it, a directory whose only neighbours share its string prefix, an emptied one.
func testListNothingBelow(e *env) {
	st := e.open()
	e.wantListEmpty(st, e.key("never"))
	e.put(st, e.key("leaf"), []byte("v"), nil)
	e.wantListEmpty(st, e.key("leaf"))
	e.put(st, e.key("sx"), []byte("v"), nil)
	e.put(st, e.key("s-1/a"), []byte("v"), nil)
	e.wantListEmpty(st, e.key("s"))
	e.put(st, e.key("gone/a"), []byte("v"), nil)
	e.del(st, e.key("gone/a"))
	e.wantListEmpty(st, e.key("gone"))
}

// DeleteTree removes exactly the keys List returns: the directory key and siblings stay.
func testDeleteTree(e *env) {
	st := e.open()
	e.listLayout(st)
	if err := st.DeleteTree(e.ctx, e.key("d/a")); err != nil {
		e.Fatalf("DeleteTree(d/a): %v", err)
	}
	e.wantList(st, e.key("d"), v("d/a"), v("d/a-b"), v("d/b/c/d/e"), v("d/z"))
	if err := st.DeleteTree(e.ctx, "/"+e.key("d")+"/"); err != nil {
		e.Fatalf("DeleteTree(/d/): %v", err)
	}
	e.wantListEmpty(st, e.key("d"))
	for _, k := range []string{"d/a", "d/a/b", "d/a-b", "d/b/c/d/e", "d/z"} {
		e.wantAbsent(st, e.key(k))
	}
	e.wantList(st, e.prefix, v("c"), v("d"), v("d-1"), v("d2/a"), v("dx"), v("e/a"))
	// The directory can be filled again.
	e.put(st, e.key("d/new"), []byte("n"), nil)
	e.wantList(st, e.key("d"), kv{"d/new", "n"})
}

func testDeleteTreeIdempotent(e *env) {
	st := e.open()
	if err := st.DeleteTree(e.ctx, e.key("never")); err != nil {
		e.Errorf("DeleteTree of a directory never written: %v", err)
	}
	e.put(st, e.key("d/a"), []byte("v"), nil)
	for i := range 2 {
		if err := st.DeleteTree(e.ctx, e.key("d")); err != nil {
			e.Errorf("DeleteTree #%d: %v", i+1, err)
		}
	}
	e.wantListEmpty(st, e.key("d"))
	e.put(st, e.key("leaf"), []byte("v"), nil)
	if err := st.DeleteTree(e.ctx, e.key("leaf")); err != nil {
		e.Errorf("DeleteTree of a key without keys below: %v", err)
	}
	e.wantValue(st, e.key("leaf"), []byte("v"))
}
