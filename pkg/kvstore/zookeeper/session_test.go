package zookeeper

import (
	"errors"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// TestSessionExpiry freezes the server for longer than the session timeout: the held lock is
// reported lost (already while the connection is down), the session's ephemeral nodes are
// gone, and the store carries on in a new session, re-creating its keep-alive key.
func TestSessionExpiry(t *testing.T) {
	srv := testservers.ZooKeeper(t)
	ctx := testCtx(t)
	st := open(t, srv.Endpoints(), nil)

	lk, err := st.NewLock(ctx, "expiry/lock", &kvstore.LockOptions{Value: []byte("holder")})
	if err != nil {
		t.Fatal(err)
	}
	lost, err := lk.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "expiry/ttl", []byte("t"), &kvstore.WriteOptions{TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "expiry/kept", []byte("k"), &kvstore.WriteOptions{TTL: time.Second, KeepAlive: true}); err != nil {
		t.Fatal(err)
	}
	watch, err := st.Watch(ctx, "expiry/ttl")
	if err != nil {
		t.Fatal(err)
	}
	if p := <-watch; p == nil {
		t.Fatal("Watch: first event nil, want the TTL key")
	}

	sessionBefore := st.(*Store).conn.SessionID()
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	select {
	case <-lost:
		t.Logf("lock reported lost %s after the pause", time.Since(paused).Round(time.Millisecond))
	case <-time.After(2 * testSession):
		_ = srv.Resume()
		t.Fatal("lock not reported lost while the server was frozen")
	}
	time.Sleep(testSession + time.Second) // let the server's clock pass the session timeout
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}

	eventually(t, 15*time.Second, "the store works again", func() bool {
		return st.Put(ctx, "expiry/after", []byte("a"), nil) == nil
	})
	// When the frozen server resumes, its expiry thread races the client's queued reconnect,
	// which revalidates the session. Check the outcome that happened.
	if st.(*Store).conn.SessionID() == sessionBefore {
		t.Log("the session survived the freeze (the reconnect won the race): its keys stay")
		if ok, err := st.Exists(ctx, "expiry/ttl"); !ok || err != nil {
			t.Fatalf("TTL key of a surviving session: %v, %v; want kept", ok, err)
		}
	} else {
		// The TTL key went with the old session; the watcher notices after reconnecting.
		select {
		case p := <-watch:
			if p != nil {
				t.Fatalf("Watch after expiry: %v, want nil", p)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Watch sent nothing after the session expired")
		}
		if ok, err := st.Exists(ctx, "expiry/ttl"); ok || err != nil {
			t.Fatalf("TTL key after session expiry: %v, %v; want gone", ok, err)
		}
	}
	eventually(t, 5*time.Second, "keep-alive key re-created in the new session", func() bool {
		p, err := st.Get(ctx, "expiry/kept")
		return err == nil && string(p.Value) == "k"
	})
	if err := lk.Unlock(ctx); err != nil {
		t.Fatalf("Unlock after loss: %v; want nil", err)
	}
	if err := lk.Unlock(ctx); !errors.Is(err, kvstore.ErrNotLocked) {
		t.Fatalf("second Unlock: %v; want ErrNotLocked", err)
	}
	// The lock can be taken again, by another client too.
	other := open(t, srv.Endpoints(), nil)
	lk2, _ := other.NewLock(ctx, "expiry/lock", nil)
	if _, err := lk2.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lk2.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLockLostWhenNodeDeleted deletes the holder's queue entry behind its back.
func TestLockLostWhenEntryDeleted(t *testing.T) {
	srv := testservers.ZooKeeper(t)
	ctx := testCtx(t)
	st := open(t, srv.Endpoints(), nil)
	raw := rawConn(t, srv.Endpoints())
	lk, _ := st.NewLock(ctx, "entry/lock", nil)
	lost, err := lk.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kids, _, err := raw.Children(lockQueuePath("entry/lock"))
	if err != nil || len(kids) != 1 {
		t.Fatalf("queue: %v, %v", kids, err)
	}
	if err := raw.Delete(lockQueuePath("entry/lock")+"/"+kids[0], -1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("lock not reported lost after its queue entry was deleted")
	}
	eventually(t, 5*time.Second, "the lock key is removed after the loss", func() bool {
		ok, _ := st.Exists(ctx, "entry/lock")
		return !ok
	})
	if err := lk.Unlock(ctx); err != nil {
		t.Fatalf("Unlock after loss: %v", err)
	}
}
