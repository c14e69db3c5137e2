package boltdb

import (
	"path/filepath"
	"testing"

	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/kvstore/kvtest"
)

func TestMain(m *testing.M) { kvtest.Main(m) }

// TestConformance runs the shared suite on a real file. FreshAddrs gives the crash subtest a
// file of its own, since its writer process must own the file alone.
func TestConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	kvtest.Run(t, kvtest.Suite{
		Backend: kvstore.BoltDB,
		Addrs:   []string{path},
		FreshAddrs: func(t testing.TB) []string {
			return []string{filepath.Join(t.TempDir(), "kv.db")}
		},
	})
}
