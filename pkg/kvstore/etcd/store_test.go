package etcd

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// TestMapping checks details of the mapping onto etcd that the conformance suite cannot see:
// revisions, leases and transactions.
func TestMapping(t *testing.T) {
	srv := testservers.Etcd(t)
	ctx := t.Context()
	st := openStore(t, srv.Endpoints(), nil)
	s := st.(*Store)

	t.Run("LastIndex is the ModRevision", func(t *testing.T) {
		_ = st.Put(ctx, "rev", []byte("x"), nil)
		p, _ := st.Get(ctx, "rev")
		resp, err := rawClient(t, srv.Addr).Get(ctx, "rev")
		if err != nil || len(resp.Kvs) != 1 || uint64(resp.Kvs[0].ModRevision) != p.LastIndex {
			t.Fatalf("LastIndex %d, etcd says %v (%v)", p.LastIndex, resp, err)
		}
	})

	t.Run("previous with LastIndex 0 never matches an absent key", func(t *testing.T) {
		zero := &kvstore.KVPair{Key: "zero"}
		if _, _, err := st.AtomicPut(ctx, "zero", []byte("x"), zero, nil); !errors.Is(err, kvstore.ErrKeyNotFound) {
			t.Fatalf("AtomicPut: %v, want ErrKeyNotFound", err)
		}
		if _, err := st.AtomicDelete(ctx, "zero", zero); !errors.Is(err, kvstore.ErrKeyNotFound) {
			t.Fatalf("AtomicDelete: %v, want ErrKeyNotFound", err)
		}
	})

	t.Run("keep-alive follows the key's lease", func(t *testing.T) {
		kept := &kvstore.WriteOptions{TTL: 2 * time.Second, KeepAlive: true}
		_ = st.Put(ctx, "ka/put", nil, kept)
		_ = st.Put(ctx, "ka/put", nil, nil) // no TTL: the lease is left behind
		_ = st.Put(ctx, "ka/del", nil, kept)
		_ = st.Delete(ctx, "ka/del")
		_ = st.Put(ctx, "ka/tree/a", nil, kept)
		_ = st.DeleteTree(ctx, "ka/tree")
		_ = st.Put(ctx, "ka/again", nil, kept)
		_ = st.Put(ctx, "ka/again", nil, kept) // the same shared lease, counted once
		_, p, _ := st.AtomicPut(ctx, "ka/cas", nil, nil, kept)
		_, _, _ = st.AtomicPut(ctx, "ka/cas", nil, p, nil)
		_, _, _ = st.AtomicPut(ctx, "ka/cas2", nil, nil, kept)
		p, _ = st.Get(ctx, "ka/cas2")
		_, _ = st.AtomicDelete(ctx, "ka/cas2", p)
		s.mu.Lock()
		n := len(s.kept)
		s.mu.Unlock()
		if n != 1 { // the shared lease of ka/again
			t.Fatalf("%d leases kept alive, want 1", n)
		}
		for _, k := range []string{"ka/one", "ka/two", "ka/three"} {
			_ = st.Put(ctx, k, nil, kept)
		}
		s.mu.Lock()
		n, refs := len(s.kept), 0
		for _, kl := range s.kept {
			refs = kl.refs
		}
		s.mu.Unlock()
		if n != 1 || refs != 4 { // KeepAlive keys of one TTL share one lease
			t.Fatalf("%d leases kept alive holding %d keys, want 1 holding 4", n, refs)
		}
	})

	t.Run("a DeleteTree is one WatchTree event", func(t *testing.T) {
		for i := range 5 {
			_ = st.Put(ctx, fmt.Sprintf("dt/%d", i), nil, nil)
		}
		ch, err := st.WatchTree(ctx, "dt")
		if err != nil {
			t.Fatal(err)
		}
		if l := <-ch; len(l) != 5 {
			t.Fatalf("first list has %d keys", len(l))
		}
		_ = st.DeleteTree(ctx, "dt")
		_ = st.Put(ctx, "dt/last", nil, nil)
		// The deletion is one revision, so no list may show it half done; the empty list and
		// the next Put may coalesce (the contract allows it), but the last state must arrive.
		for {
			select {
			case l := <-ch:
				switch {
				case len(l) == 0:
				case len(l) == 1 && l[0].Key == "dt/last":
					return
				default:
					t.Fatalf("list of %d keys after DeleteTree: the deletion was seen half done", len(l))
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no event")
			}
		}
	})
}
