package zookeeper

import (
	"errors"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// TestAtomicPutStaleAfterRecreate: a previous from before another client deleted the key and
// created it again is stale even when the new node has reached the same data version, so
// AtomicPut can never be a bare set conditional on a version remembered from an earlier read
// or write (ZooKeeper versions restart at 0 when a node is created): it must read the Mzxid.
func TestAtomicPutStaleAfterRecreate(t *testing.T) {
	srv := testservers.ZooKeeper(t)
	ctx := testCtx(t)
	st := open(t, srv.Endpoints(), nil)
	raw := rawConn(t, srv.Endpoints())

	if err := st.Put(ctx, "aba/k", []byte("v0"), nil); err != nil {
		t.Fatal(err)
	}
	p1, err := st.Get(ctx, "aba/k")
	if err != nil {
		t.Fatal(err)
	}
	ok, p2, err := st.AtomicPut(ctx, "aba/k", []byte("v1"), p1, nil)
	if err != nil || !ok {
		t.Fatalf("AtomicPut = %v, %v", ok, err)
	}
	_, stat, err := raw.Get("/aba/k")
	if err != nil {
		t.Fatal(err)
	}
	// Behind the store's back: delete, create anew and write until the version is the same.
	if err := raw.Delete("/aba/k", -1); err != nil {
		t.Fatal(err)
	}
	data := encodeValue([]byte("theirs"))
	if _, err := raw.Create("/aba/k", data, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	for v := int32(0); v < stat.Version; v++ {
		if _, err := raw.Set("/aba/k", data, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, now, _ := raw.Get("/aba/k"); now.Version != stat.Version {
		t.Fatalf("setup: version %d, want %d", now.Version, stat.Version)
	}

	ok, _, err = st.AtomicPut(ctx, "aba/k", []byte("stale"), p2, nil)
	if ok || !errors.Is(err, kvstore.ErrKeyModified) {
		t.Fatalf("AtomicPut(previous from before the re-creation) = %v, %v; want false, ErrKeyModified", ok, err)
	}
	if p, err := st.Get(ctx, "aba/k"); err != nil || string(p.Value) != "theirs" {
		t.Fatalf("Get = %v, %v; want the other client's value", p, err)
	}
}
