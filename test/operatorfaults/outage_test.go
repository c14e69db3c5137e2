//go:build faults

package operatorfaults

import (
	"testing"
	"time"

	"go.uber.org/goleak"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/operatortest"
	"github.com/kvop/kvop/pkg/kvstore"
)

// reassertBound is how soon after the server answers again every wanted entry must be back.
const reassertBound = entryTTL + 5*time.Second

// TestBackendOutage kills each backend's server (SIGKILL) under a running manager and restarts
// it, first with its data and then empty (wiped): the KVEndpoint goes Ready=False and back to
// True, every entry is re-asserted within TTL + 5 s of the server answering, the lease has a
// leader again with the labels in agreement, and the manager never gives up. Once every manager
// stopped, no goroutine is left behind.
//
// It is not parallel with other tests: the leak check counts the goroutines of the process.
func TestBackendOutage(t *testing.T) {
	// What runs before this test (the API server's clients, klog's flusher, the shared test
	// servers, which Each starts, with their waiters and probes' idle connections) is not this
	// test's to judge.
	for _, b := range kvstore.Backends() {
		backendtest.Get(t, b)
	}
	ignore := goleak.IgnoreCurrent()

	t.Run("backends", func(t *testing.T) {
		backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
			tg = tg.Private(t)
			f := newFixture(t, tg)
			f.mgr = operatortest.StartManager(t, f.ns)
			f.createWorkload()

			start := time.Now()
			f.waitEndpoint(metav1.ConditionTrue, settle)
			f.waitEntries(settle)
			leader, _ := f.waitLeader(settle)
			figure(t, "%s: steady state (endpoint Ready, 3 entries, leader %s) in %s", tg.Backend, leader, since(start))

			if tg.Server == nil {
				// boltdb is a file inside the manager's process: there is no server to kill, and
				// a broken file is the "bad input" tests' business. The rest (the manager keeps
				// running, nothing leaks once it stopped) holds for it as for the others.
				t.Logf("%s: embedded, no server process: the kill and restart rounds do not apply", tg.Backend)
			} else {
				for _, wipe := range []bool{false, true} {
					outage(t, f, wipe)
				}
			}

			f.alive("end of the test")
			f.mgr.Stop()
			if s := f.mgr.Pool.Get(f.key(endpointName)); s != nil {
				t.Errorf("the pool still holds a store after the manager stopped")
			}
		})
	})

	// Every manager has stopped and every private server is gone (subtest clean-ups ran).
	goleak.VerifyNone(t, ignore,
		// Not kvop's: controller-runtime wraps metadata-only watches (kvop watches Secrets by
		// metadata, so that it caches none of their data) in apimachinery's watch.Filter, whose
		// loop stays blocked on a send once the informer has stopped — one goroutine per
		// stopped informer, i.e. per manager exit.
		goleak.IgnoreTopFunction("k8s.io/apimachinery/pkg/watch.(*filteredWatch).loop"))
}

// outage kills the server (and wipes it when asked), waits until the endpoint reports it, then
// restarts it and measures the recovery.
func outage(t *testing.T, f *fixture, wipe bool) {
	t.Helper()
	round := "restart"
	if wipe {
		round = "wipe+restart"
	}
	srv := f.tg.Server
	killed := time.Now()
	srv.Kill()
	if wipe {
		if err := srv.Wipe(); err != nil {
			t.Fatal(err)
		}
	}
	notReady := f.waitEndpoint(metav1.ConditionFalse, settle)
	f.alive(round + ": server down")

	if err := srv.Restart(); err != nil {
		t.Fatalf("%s: %v", round, err)
	}
	back := time.Now()
	// Each figure counts from the moment the server answered again.
	f.waitEndpoint(metav1.ConditionTrue, settle)
	ready := time.Since(back)
	f.waitEntries(settle)
	entries := time.Since(back)
	if entries > reassertBound {
		t.Errorf("%s %s: entries re-asserted %s after the server was back; want within TTL + 5s = %s",
			f.tg.Backend, round, since(back), reassertBound)
	}
	leader, _ := f.waitLeader(settle)
	leaderIn := time.Since(back)
	f.alive(round + ": server back")
	figure(t, "%s %s: Ready=False %s after the kill (down %s); after the server was back: Ready=True in %s, "+
		"3 entries in %s (bound %s), leader %s with consistent labels in %s",
		f.tg.Backend, round, round2(notReady), round2(back.Sub(killed)), round2(ready), round2(entries), reassertBound,
		leader, round2(leaderIn))
}

func since(t time.Time) time.Duration { return round2(time.Since(t)) }

func round2(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
