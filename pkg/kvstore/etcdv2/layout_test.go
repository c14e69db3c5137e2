package etcdv2_test

import (
	"slices"
	"testing"
	"time"

	client "go.etcd.io/etcd/client/v2"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// The v2 pitfall: a node is a directory or a value, never both. A key and a directory share a
// name, keys whose segments start with "_" (hidden in v2) or "~" (the escape) round-trip and
// are listed, and the nodes are where the package doc says.
func TestLayout(t *testing.T) {
	srv := testservers.EtcdV2(t)
	st := open(t, srv.Endpoints(), nil)
	ctx := ctxT(t)

	keys := []string{"l/a", "l/a/b", "l/a/b/c", "l/_h", "l/_h/_i", "l/~", "l/~/~~", "l/x~", "l/__"}
	for _, k := range keys {
		mustPut(t, st, k, "v:"+k, nil)
	}
	for _, k := range keys {
		if p := mustGet(t, st, k); string(p.Value) != "v:"+k || p.Key != k {
			t.Errorf("Get(%q) = %q=%q", k, p.Key, p.Value)
		}
	}
	got, err := st.List(ctx, "l")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.Key)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("List(l) = %q, want %q", names, want)
	}

	// The nodes behind the keys, as documented.
	kapi := raw(t, srv, "", "")
	for node, value := range map[string]string{
		"/kvop/l/a/~": "=v:l/a", "/kvop/l/a/b/~": "=v:l/a/b", "/kvop/l/~_h/~_i/~": "=v:l/_h/_i",
		"/kvop/l/~~/~~~/~": "=v:l/~/~~", "/kvop/l/~__/~": "=v:l/__",
	} {
		resp, err := kapi.Get(ctx, node, nil)
		if err != nil {
			t.Errorf("raw Get(%s): %v", node, err)
		} else if resp.Node.Value != value {
			t.Errorf("raw Get(%s) = %q, want %q", node, resp.Node.Value, value)
		}
	}

	// A parent path is not a key; deleting a key keeps the keys below it and vice versa.
	_, err = st.Get(ctx, "l")
	wantErr(t, err, kvstore.ErrKeyNotFound, "Get(parent)")
	if err := st.Delete(ctx, "l/a"); err != nil {
		t.Fatal(err)
	}
	mustGet(t, st, "l/a/b")
	if err := st.DeleteTree(ctx, "l/a/b"); err != nil {
		t.Fatal(err)
	}
	mustGet(t, st, "l/a/b")
	_, err = st.Get(ctx, "l/a/b/c")
	wantErr(t, err, kvstore.ErrKeyNotFound, "Get after DeleteTree")

	// Delete prunes the directories it empties, and only those.
	if err := st.Delete(ctx, "l/a/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := kapi.Get(ctx, "/kvop/l/a", nil); !isCode(err, client.ErrorCodeKeyNotFound) {
		t.Errorf("raw Get(/kvop/l/a) after deleting everything below: %v, want key not found", err)
	}
	if _, err := kapi.Get(ctx, "/kvop/l", nil); err != nil {
		t.Errorf("raw Get(/kvop/l) with keys left below: %v", err)
	}
}

// A keep-alive refresh is not a change: LastIndex stays, Watch and WatchTree stay quiet, and a
// CAS on the LastIndex from before the refreshes still wins. A Put without TTL ends the expiry.
func TestKeepAliveRefreshIsNotAChange(t *testing.T) {
	srv := testservers.EtcdV2(t)
	st := open(t, srv.Endpoints(), nil)
	other := open(t, srv.Endpoints(), nil)
	ctx := ctxT(t)

	mustPut(t, st, "ka/k", "v", &kvstore.WriteOptions{TTL: time.Second, KeepAlive: true})
	before := mustGet(t, st, "ka/k")
	w, err := other.Watch(ctx, "ka/k")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := other.WatchTree(ctx, "ka")
	if err != nil {
		t.Fatal(err)
	}
	next(t, w, 5*time.Second, "Watch first event")
	next(t, tree, 5*time.Second, "WatchTree first event")
	quiet(t, w, 3*time.Second, "Watch during keep-alive") // several refreshes (every 333ms)
	quiet(t, tree, 0, "WatchTree during keep-alive")
	after := mustGet(t, other, "ka/k")
	if after.LastIndex != before.LastIndex {
		t.Errorf("LastIndex moved from %d to %d with refreshes only", before.LastIndex, after.LastIndex)
	}
	ok, p, err := other.AtomicPut(ctx, "ka/k", []byte("w"), before, nil)
	if !ok || err != nil || p.LastIndex <= before.LastIndex {
		t.Fatalf("AtomicPut on the LastIndex from before the refreshes = %v, %+v, %v", ok, p, err)
	}
	if ev := next(t, w, 5*time.Second, "Watch after AtomicPut"); ev == nil || string(ev.Value) != "w" {
		t.Errorf("Watch after AtomicPut = %+v", ev)
	}
	// other's write ended the expiry; st's keep-alive stops as its key was replaced.
	time.Sleep(2500 * time.Millisecond)
	if p := mustGet(t, st, "ka/k"); string(p.Value) != "w" {
		t.Errorf("Get after AtomicPut without TTL = %q", p.Value)
	}

	// Put with keep-alive, then Put without TTL: the key outlives its old TTL.
	mustPut(t, st, "ka/j", "1", &kvstore.WriteOptions{TTL: time.Second, KeepAlive: true})
	time.Sleep(1500 * time.Millisecond)
	mustPut(t, st, "ka/j", "2", nil)
	time.Sleep(2500 * time.Millisecond)
	if p := mustGet(t, st, "ka/j"); string(p.Value) != "2" {
		t.Errorf("Get(ka/j) = %q, want 2", p.Value)
	}
}

func isCode(err error, code int) bool {
	e, ok := err.(client.Error)
	return ok && e.Code == code
}
