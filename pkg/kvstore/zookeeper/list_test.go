package zookeeper

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// TestListWiderThanPipeline lists directories with more nodes on one level than walk has
// requests in flight, so its workers take several nodes each.
func TestListWiderThanPipeline(t *testing.T) {
	srv := testservers.ZooKeeper(t)
	ctx := testCtx(t)
	st := open(t, srv.Endpoints(), nil)
	n := walkParallelism + walkParallelism/4
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs <- st.Put(ctx, fmt.Sprintf("wide/d%d/k%05d", i%2, i), []byte{byte(i)}, nil)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"wide", "wide/d1"} {
		l, err := st.List(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		want := n
		if dir == "wide/d1" {
			want = n / 2
		}
		if len(l) != want {
			t.Fatalf("List(%s) returned %d keys, want %d", dir, len(l), want)
		}
		for i, p := range l {
			if i > 0 && l[i-1].Key >= p.Key {
				t.Fatalf("List(%s) not sorted at %d: %q, %q", dir, i, l[i-1].Key, p.Key)
			}
			var k int
			if _, err := fmt.Sscanf(p.Key[len(p.Key)-5:], "%05d", &k); err != nil || len(p.Value) != 1 || p.Value[0] != byte(k) {
				t.Fatalf("List(%s): %q = %v", dir, p.Key, p.Value)
			}
		}
	}
	if err := st.DeleteTree(ctx, "wide"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.List(ctx, "wide"); !errors.Is(err, kvstore.ErrKeyNotFound) {
		t.Fatalf("List after DeleteTree: %v, want ErrKeyNotFound", err)
	}
}
