package zookeeper

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// TestRequestsAcrossReconnect keeps readers busy while the server restarts, with watches
// armed, so that requests are pending at the moment the session is resumed: they wait (see
// awaitReady) and then succeed, the session is resumed (same id) and the watches fire
// afterwards. This is the moment at which go-zookeeper v1.0.4 re-registers watches while
// reading Conn.lastZxid unsynchronised; -race has reported that race in longer fault tests,
// not reliably here, so this test checks the behaviour around it rather than the race.
func TestRequestsAcrossReconnect(t *testing.T) {
	srv := testservers.ZooKeeper(t)
	ctx := testCtx(t)
	// A session long enough to outlive a restart of the server, which is then resumed.
	st := open(t, srv.Endpoints(), &kvstore.Config{SessionTimeout: 20 * time.Second, ConnectionTimeout: 10 * time.Second})
	const keys = 8
	watches := make([]<-chan *kvstore.KVPair, keys)
	for i := range keys {
		key := fmt.Sprintf("reconnect/k%d", i)
		if err := st.Put(ctx, key, []byte("before"), nil); err != nil {
			t.Fatal(err)
		}
		ch, err := st.Watch(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if p := <-ch; p == nil || string(p.Value) != "before" {
			t.Fatalf("first event of %s: %+v", key, p)
		}
		watches[i] = ch
	}
	session := st.(*Store).conn.SessionID()

	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var reads, failures atomic.Int64
	for r := range 16 {
		wg.Go(func() {
			for rctx.Err() == nil {
				if _, err := st.Get(rctx, fmt.Sprintf("reconnect/k%d", r%keys)); err != nil {
					failures.Add(1)
					continue
				}
				reads.Add(1)
			}
		})
	}
	for range 3 {
		srv.Kill()
		if err := srv.Restart(); err != nil {
			stop()
			t.Fatal(err)
		}
		before := reads.Load()
		eventually(t, 15*time.Second, "reads succeed after the restart", func() bool { return reads.Load() > before+10 })
	}
	stop()
	wg.Wait()
	t.Logf("%d reads, %d failed while the server was down", reads.Load(), failures.Load())

	if got := st.(*Store).conn.SessionID(); got != session {
		t.Fatalf("session %x after the restarts, want %x resumed", got, session)
	}
	for i := range keys {
		key := fmt.Sprintf("reconnect/k%d", i)
		if err := st.Put(ctx, key, []byte("after"), nil); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for {
			var p *kvstore.KVPair
			select {
			case p = <-watches[i]:
			case <-deadline:
				t.Fatalf("watch of %s: no event with the value written after the restarts", key)
			}
			if p != nil && bytes.Equal(p.Value, []byte("after")) {
				break
			}
		}
	}
}
