package etcd

import (
	"testing"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/kvstore/kvtest"
)

func TestMain(m *testing.M) { kvtest.Main(m) }

// TestConformance runs the shared suite: every line of the Store contract.
func TestConformance(t *testing.T) {
	srv := testservers.Etcd(t)
	kvtest.Run(t, kvtest.Suite{Backend: kvstore.Etcd, Addrs: srv.Endpoints()})
}
