package consul_test

import (
	"context"
	"fmt"
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

// TestKeepAliveKeysShareASession: the KeepAlive keys of one TTL share one session per store
// (one renewal for all), keys of another TTL or without KeepAlive do not; a key deleted lets go
// of the session without touching the others, and the last one destroys it.
func TestKeepAliveKeysShareASession(t *testing.T) {
	srv := testservers.Consul(t)
	st := open(t, []string{srv.Addr}, nil)
	ctx := context.Background()
	kv, sessions := rawClient(t, srv).KV(), rawClient(t, srv).Session()
	const ttl = 2 * time.Second
	put := func(key string, opts *kvstore.WriteOptions) {
		t.Helper()
		if err := st.Put(ctx, key, []byte("v"), opts); err != nil {
			t.Fatal(err)
		}
	}
	sessionOf := func(key string) string {
		t.Helper()
		pair, _, err := kv.Get(key, nil)
		if err != nil || pair == nil {
			t.Fatalf("reading %s: %v, %v", key, pair, err)
		}
		return pair.Session
	}
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("shared/kept-%02d", i)
		put(keys[i], &kvstore.WriteOptions{TTL: ttl, KeepAlive: true})
	}
	put("shared/kept-again", &kvstore.WriteOptions{TTL: ttl, KeepAlive: true})
	put("shared/kept-again", &kvstore.WriteOptions{TTL: ttl, KeepAlive: true}) // rewritten: still one reference
	put("shared/other-ttl", &kvstore.WriteOptions{TTL: 3 * time.Second, KeepAlive: true})
	put("shared/plain-ttl", &kvstore.WriteOptions{TTL: ttl})

	shared := sessionOf(keys[0])
	for _, k := range append(keys[1:], "shared/kept-again") {
		if s := sessionOf(k); s != shared {
			t.Fatalf("%s is bound to session %s, %s to %s: KeepAlive keys of one TTL must share one", k, s, keys[0], shared)
		}
	}
	if s := sessionOf("shared/other-ttl"); s == shared || s == "" {
		t.Fatalf("a KeepAlive key of another TTL is bound to %q (shared: %s)", s, shared)
	}
	if s := sessionOf("shared/plain-ttl"); s == shared || s == "" {
		t.Fatalf("a TTL key without KeepAlive is bound to %q (shared: %s)", s, shared)
	}

	// Deleting all but one key leaves the session and the last key alive past the bound.
	for _, k := range append(keys[1:], "shared/kept-again") {
		if err := st.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2*ttl + time.Second)
	if s := sessionOf(keys[0]); s != shared {
		t.Fatalf("after the others were deleted, %s is bound to %q, want %s", keys[0], s, shared)
	}
	if pair, _, err := kv.Get("shared/plain-ttl", nil); err != nil || pair != nil {
		t.Fatalf("the TTL key without KeepAlive outlived its bound (%v, %v): it shares a renewed session", pair, err)
	}

	// The last key goes: so does the session.
	if err := st.Delete(ctx, keys[0]); err != nil {
		t.Fatal(err)
	}
	if info, _, err := sessions.Info(shared, nil); err != nil || info != nil {
		t.Fatalf("session after its last key was deleted: %+v, %v (want destroyed)", info, err)
	}

	// A shared session destroyed behind the store's back takes its keys with it; the next
	// KeepAlive write binds to a new one, which is kept alive.
	put("shared/a", &kvstore.WriteOptions{TTL: ttl, KeepAlive: true})
	first := sessionOf("shared/a")
	if _, err := sessions.Destroy(first, nil); err != nil {
		t.Fatal(err)
	}
	put("shared/b", &kvstore.WriteOptions{TTL: ttl, KeepAlive: true})
	second := sessionOf("shared/b")
	if second == first {
		t.Fatal("a KeepAlive write was bound to a destroyed session")
	}
	time.Sleep(2*ttl + time.Second)
	if sessionOf("shared/b") != second {
		t.Fatal("the new shared session was not kept alive")
	}
}
