package consul_test

import (
	"testing"
	"time"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/kvstore/kvtest"
)

func TestMain(m *testing.M) { kvtest.Main(m) }

// TestConformance runs the shared suite on one server. Its session_ttl_min is 1s, so the TTL
// bound is 2 × max(TTL, 1s) + 1s instead of kvstore.TTLBound's default-server 10s floor.
func TestConformance(t *testing.T) {
	srv := testservers.Consul(t)
	kvtest.Run(t, kvtest.Suite{
		Backend:  kvstore.Consul,
		Addrs:    srv.Endpoints(),
		TTLBound: testTTLBound,
	})
}

// testTTLBound is the TTL bound on the test server, whose session_ttl_min is 1s.
func testTTLBound(ttl time.Duration) time.Duration { return 2*max(ttl, time.Second) + time.Second }
