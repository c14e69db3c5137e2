package consul_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// behindServer stands in front of a real Consul server and, while behind is set, answers like
// a server that has just restarted and won an election but not yet replayed its raft log:
// default-mode reads of a key and session renewals say "not found" (404); consistent reads
// and everything else reach the real server. Setting behind also cuts the blocking queries in
// flight, as a restart does.
type behindServer struct {
	behind  atomic.Bool
	stale   atomic.Int64 // "not found" answers given
	mu      sync.Mutex
	cancels map[*http.Request]context.CancelFunc
	URL     string
}

func newBehindServer(t *testing.T, target string) *behindServer {
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	b := &behindServer{cancels: map[*http.Request]context.CancelFunc{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, consistent := r.URL.Query()["consistent"]
		stale := (r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/kv/") && !consistent) ||
			strings.HasPrefix(r.URL.Path, "/v1/session/renew/")
		if stale && b.behind.Load() {
			b.stale.Add(1)
			http.NotFound(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		b.mu.Lock()
		b.cancels[r] = cancel
		b.mu.Unlock()
		defer func() {
			b.mu.Lock()
			delete(b.cancels, r)
			b.mu.Unlock()
			cancel()
		}()
		proxy.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(srv.Close)
	b.URL = strings.TrimPrefix(srv.URL, "http://")
	return b
}

// setBehind switches the stale answers on or off; switching on cuts requests in flight.
func (b *behindServer) setBehind(on bool) {
	b.behind.Store(on)
	if on {
		b.mu.Lock()
		for _, cancel := range b.cancels {
			cancel()
		}
		b.mu.Unlock()
	}
}

// TestLockSurvivesServerNotCaughtUp: a lock holder must not give its lock up on the word of a
// server that has not caught up with its raft log (the window after a restart in which a
// default read or a renewal may say the key or session is gone). The store confirms "gone"
// with a consistent read first. Without that, this test loses the lock within a second.
func TestLockSurvivesServerNotCaughtUp(t *testing.T) {
	srv := testservers.Consul(t)
	proxy := newBehindServer(t, srv.Addr)
	ctx := context.Background()
	st := open(t, []string{proxy.URL}, nil)
	// The window is shorter than the TTL, as a real one is (milliseconds after an election):
	// renewals that fail for a whole TTL rightly cost the lock, whatever the reason. It covers
	// a renewal (every TTL/2) and the lock key's re-read after the cut.
	const ttl = 6 * time.Second
	l, err := st.NewLock(ctx, "catchup/lock", &kvstore.LockOptions{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	lost, err := l.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	proxy.setBehind(true)
	select {
	case <-lost:
		t.Fatalf("lock given up on the word of a server behind its log (%d stale answers)", proxy.stale.Load())
	case <-time.After(ttl * 6 / 10):
	}
	proxy.setBehind(false)
	if n := proxy.stale.Load(); n < 2 {
		t.Fatalf("only %d stale answers reached the store: the test did not exercise the window", n)
	}
	// Past the point where a session whose renewals had stopped would have expired.
	select {
	case <-lost:
		t.Fatal("lock lost after the server caught up")
	case <-time.After(ttl):
	}
	if pair, err := st.Get(ctx, "catchup/lock"); err != nil || pair == nil {
		t.Fatalf("lock key after the window: %v, %v", pair, err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatalf("Unlock: %v", err)
	}

	// And a lock that is really gone is still reported lost, through the same proxy.
	lost, err = l.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rawClient(t, srv).KV().Delete("catchup/lock", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("lost channel still open after the lock key was deleted")
	}
}
