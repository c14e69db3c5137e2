package boltdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kvop/kvop/pkg/kvstore"
)

// TestConcurrentWriters: 64 writers going through DB.Batch (re-runs included) each see their
// own outcome: every Put lands with a distinct LastIndex, and of the AtomicPut racers on one
// key exactly one wins per round while the losers get ErrKeyModified.
func TestConcurrentWriters(t *testing.T) {
	noLeaks(t)
	const writers, perWriter = 64, 20
	ctx := context.Background()
	st := openAt(t, tempDB(t), nil)
	commitsBefore := lastTxID(t, st)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				if err := st.Put(ctx, fmt.Sprintf("batch/%02d/%03d", w, i), []byte(fmt.Sprint(w, i)), nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Each commit bumps the transaction id; batching shows as far fewer commits than writes.
	commits := lastTxID(t, st) - commitsBefore
	t.Logf("%d concurrent Puts took %d commits", writers*perWriter, commits)
	if commits > writers*perWriter/2 {
		t.Errorf("%d Puts from %d writers took %d commits: not batched", writers*perWriter, writers, commits)
	}
	l, err := st.List(ctx, "batch")
	if err != nil || len(l) != writers*perWriter {
		t.Fatalf("List: %d pairs, %v", len(l), err)
	}
	seen := map[uint64]string{}
	for _, p := range l {
		var w, i int
		if _, err := fmt.Sscanf(p.Key, "batch/%02d/%03d", &w, &i); err != nil || string(p.Value) != fmt.Sprint(w, i) {
			t.Fatalf("%s = %q", p.Key, p.Value)
		}
		if other, dup := seen[p.LastIndex]; dup {
			t.Fatalf("%s and %s share LastIndex %d", p.Key, other, p.LastIndex)
		}
		seen[p.LastIndex] = p.Key
	}

	// CAS rounds: all racers start from the same previous.
	if err := st.Put(ctx, "cas", []byte("0"), nil); err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		prev, err := st.Get(ctx, "cas")
		if err != nil {
			t.Fatal(err)
		}
		var (
			mu       sync.Mutex
			winners  int
			modified int
		)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, _, err := st.AtomicPut(ctx, "cas", []byte(fmt.Sprint(round, w)), prev, nil)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case ok && err == nil:
					winners++
				case errors.Is(err, kvstore.ErrKeyModified):
					modified++
				default:
					t.Errorf("AtomicPut: %v %v", ok, err)
				}
			}()
		}
		wg.Wait()
		if winners != 1 || modified != writers-1 {
			t.Fatalf("round %d: %d winners, %d ErrKeyModified", round, winners, modified)
		}
	}
}

// lastTxID is the id of the last committed write transaction of the store's file.
func lastTxID(t *testing.T, st kvstore.Store) int {
	t.Helper()
	var id int
	if err := st.(*store).h.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}
