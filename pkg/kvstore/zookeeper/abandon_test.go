package zookeeper

import (
	"testing"
	"time"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// TestAbandonHandsKeysToASuccessor: an abandoned store releases its locks at once but leaves
// its TTL keys to the session timeout, so a successor that writes them meanwhile keeps them
// without a gap; keys nobody takes over expire within the TTL bound. (Close, by contrast, ends
// the session and deletes them at once.)
func TestAbandonHandsKeysToASuccessor(t *testing.T) {
	srv := testservers.ZooKeeper(t)
	ctx := testCtx(t)
	old := open(t, srv.Endpoints(), nil)
	watcher := open(t, srv.Endpoints(), nil)

	lk, err := old.NewLock(ctx, "handover/lock", &kvstore.LockOptions{Value: []byte("old")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lk.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	keep := &kvstore.WriteOptions{TTL: time.Minute, KeepAlive: true}
	for _, k := range []string{"handover/taken", "handover/orphan"} {
		if err := old.Put(ctx, k, []byte("v"), keep); err != nil {
			t.Fatal(err)
		}
	}
	// Record every state of the key the successor takes over: it must never be absent.
	events, err := watcher.Watch(ctx, "handover/taken")
	if err != nil {
		t.Fatal(err)
	}
	<-events

	abandoned := time.Now()
	if err := kvstore.Abandon(old); err != nil {
		t.Fatal(err)
	}
	if ok, err := watcher.Exists(ctx, "handover/lock"); err != nil || ok {
		t.Fatalf("lock key after Abandon: exists=%v err=%v; want released at once", ok, err)
	}
	successor := open(t, srv.Endpoints(), nil)
	if err := successor.Put(ctx, "handover/taken", []byte("v"), keep); err != nil {
		t.Fatal(err)
	}

	// The orphan expires with the old session; the taken key stays, never absent meanwhile.
	bound := kvstore.TTLBound(kvstore.ZooKeeper, 0, testSession) + time.Second
	eventually(t, bound+2*time.Second, "orphaned key to expire with the old session", func() bool {
		ok, err := watcher.Exists(ctx, "handover/orphan")
		return err == nil && !ok
	})
	t.Logf("orphan gone %s after Abandon", time.Since(abandoned).Round(time.Millisecond))
	for {
		select {
		case ev := <-events:
			if ev == nil {
				t.Fatal("the key taken over by the successor was absent for a moment")
			}
		default:
			if ok, err := watcher.Exists(ctx, "handover/taken"); err != nil || !ok {
				t.Fatalf("taken key after the old session expired: exists=%v err=%v", ok, err)
			}
			return
		}
	}
}
