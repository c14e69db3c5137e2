// Package kvtest is the conformance suite that every kvstore backend runs, unchanged and with
// nothing skipped: one named subtest per behaviour line of the Store contract.
//
// A backend's test package wires it up in two lines (Main is needed because some subtests
// re-execute the test binary as a writer process and SIGKILL it):
//
//	func TestMain(m *testing.M) { kvtest.Main(m) }
//
//	func TestConformance(t *testing.T) {
//		srv := testservers.Etcd(t)
//		kvtest.Run(t, kvtest.Suite{Backend: kvstore.Etcd, Addrs: srv.Endpoints()})
//	}
package kvtest

import (
	"testing"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Suite describes the store under test.
type Suite struct {
	Backend kvstore.Backend
	// Addrs and Config are passed to kvstore.New for every client the suite opens (two
	// independent clients for cross-client tests). Config.TLS cannot be passed to the writer
	// processes of the crash subtests, so leave it nil here.
	Addrs  []string
	Config *kvstore.Config
	// FreshAddrs, when set, returns the addresses of a new, empty store (boltdb: a new file).
	// The suite uses it where a writer process must own the store alone.
	FreshAddrs func(t testing.TB) []string
	// TTLBound overrides kvstore.TTLBound(Backend, ttl, Config.SessionTimeout), e.g. for a test
	// Consul server with a lowered session_ttl_min.
	TTLBound func(ttl time.Duration) time.Duration
}
