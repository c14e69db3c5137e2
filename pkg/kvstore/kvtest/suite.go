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
//
// and its benchmarks in one:
//
//	func BenchmarkStore(b *testing.B) {
//		b.Run("kvop", func(b *testing.B) { kvtest.Bench(b, openStore) })
//		b.Run("raw", func(b *testing.B) { kvtest.BenchOps(b, rawOps(b)) }) // a kvtest.Ops
//	}
//
// Every subtest works below a key prefix of its own ("kvtest/<run>/<subtest>"), so all of
// them share one server and run in parallel. Most of them wait on timers (TTL expiry, lock
// hand-over), not on the CPU, so Main raises -test.parallel (see Main).
package kvtest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
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
	// TTL is the TTL the suite writes keys and locks with; 0 means 2s (etcd's smallest lease
	// is about 2s, so shorter TTLs would not be honoured).
	TTL time.Duration
}

// subtest is one behaviour line of the contract.
type subtest struct {
	name string
	run  func(e *env)
}

// subtests lists every behaviour the suite checks, by topic; each topic lives in its own file.
func subtests() []subtest {
	var all []subtest
	for _, topic := range [][]subtest{
		keySubtests(),
		listSubtests(),
		atomicSubtests(),
		watchSubtests(),
		ttlSubtests(),
		lockSubtests(),
		crashSubtests(),
		errorSubtests(),
		concurrencySubtests(),
	} {
		all = append(all, topic...)
	}
	return all
}

// Run runs the conformance suite against s: one parallel subtest per behaviour. The test
// package's TestMain must call Main (the crash subtests re-execute the test binary). After
// every subtest has finished and closed its stores, Run fails t if goroutines started during
// the suite are still running (see checkLeaks); so run no other test of the package in
// parallel with it, or their goroutines would count too.
func Run(t *testing.T, s Suite) {
	t.Helper()
	if os.Getenv(envWriter) != "" {
		// Only reachable when TestMain does not call Main: the writer process would run the
		// suite again and fork writers of its own.
		t.Fatalf("kvtest: this test binary is a kvtest writer process; the package's TestMain must call kvtest.Main(m)")
	}
	if s.Backend == "" || len(s.Addrs) == 0 {
		t.Fatalf("kvtest: Suite needs a Backend and Addrs (got %q, %q)", s.Backend, s.Addrs)
	}
	if s.TTL <= 0 {
		s.TTL = defaultTTL
	}
	// The writer processes of the crash subtests are started with -test.run naming this test.
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	runPattern := strings.Join(parts, "/")
	// A run id keeps reruns (-count=N) and other runs against the same server apart.
	run := fmt.Sprintf("%x-%04x", time.Now().UnixNano()&0xffffffffff, rand.IntN(1<<16))

	checkLeaks(t)
	for _, st := range subtests() {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			st.run(newEnv(t, s, "kvtest/"+run+"/"+st.name, runPattern))
		})
	}
}
