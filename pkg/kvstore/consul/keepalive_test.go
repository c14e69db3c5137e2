package consul_test

import (
	"context"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// TestKeepAliveOutlastsOutage: a KeepAlive key must survive an outage longer than its TTL but
// shorter than the time Consul gives a session (2 × TTL after the last renewal; a new leader
// restarts every timer). This is a leader election in a cluster that takes longer than the TTL
// (CI saw 4.2 s with a 2 s TTL); here a paused server stands in for it. A keep-alive that gave
// up after one TTL of failed renewals lost every registration a few seconds after the server
// answered again.
func TestKeepAliveOutlastsOutage(t *testing.T) {
	srv := testservers.Consul(t)
	st := open(t, []string{srv.Addr}, &kvstore.Config{ConnectionTimeout: 500 * time.Millisecond})
	ctx := context.Background()
	const ttl = 2 * time.Second // the test servers' session_ttl_min is 1 s
	if err := st.Put(ctx, "keepalive/outage", []byte("v"), &kvstore.WriteOptions{TTL: ttl, KeepAlive: true}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	// Renewals fail for longer than the TTL; the session's timer (2 × TTL) has not run out.
	time.Sleep(ttl + 600*time.Millisecond)
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	// A renewal sent during the pause may still be applied when the server reads it on
	// resuming; past 2 × TTL after that, only renewals sent afterwards keep the key.
	kv := rawClient(t, srv).KV()
	for time.Since(resumed) < 2*ttl+2*time.Second {
		pair, _, err := kv.Get("keepalive/outage", nil)
		if err != nil {
			t.Fatalf("reading the key: %v", err)
		}
		if pair == nil {
			t.Fatalf("the KeepAlive key expired %s after the server answered again", time.Since(resumed).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
