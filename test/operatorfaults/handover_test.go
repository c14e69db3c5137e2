//go:build faults

package operatorfaults

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/operatortest"
	"github.com/kvop/kvop/pkg/discovery"
	"github.com/kvop/kvop/pkg/kvstore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestManagerHandover runs two managers with controller-runtime leader election on one
// namespace (as two replicas of the Deployment would) and stops the active one: the standby
// takes over; meanwhile, watched from a client of its own, no live entry ever leaves the store
// — also not when the stopped manager's connections expire — and the leader pod, still Ready,
// keeps its leadership and its label.
func TestManagerHandover(t *testing.T) {
	t.Parallel()
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		tg = tg.Fresh(t)
		f := newFixture(t, tg)
		opts := operatortest.ManagerOptions{LeaderElection: true}
		active := operatortest.StartManagerWith(t, f.ns, opts)
		waitElected(t, active, "the first manager")
		standby := operatortest.StartManagerWith(t, f.ns, opts)
		f.mgr = active
		f.createWorkload()
		f.waitEndpoint(metav1.ConditionTrue, settle)
		f.waitEntries(settle)
		leader, _ := f.waitLeader(settle)
		select {
		case <-standby.Elected:
			t.Fatal("the standby leads while the active manager runs")
		default:
		}

		// Everything that happens from here on is watched until the stopped manager's keys
		// would have expired had the standby not taken them over: its TTL bound.
		window := kvstore.TTLBound(tg.Backend, entryTTL, managerSession) + 2*time.Second
		w := watchHandover(t, f, leader)

		stopped := time.Now()
		active.Stop()
		waitElected(t, standby, "the standby")
		tookOver := time.Since(stopped)
		f.mgr = standby
		f.waitEndpoint(metav1.ConditionTrue, settle)
		f.waitEntries(settle)
		if l, _ := f.waitLeader(settle); l != leader {
			t.Errorf("leadership moved from %s to %s across the handover", leader, l)
		}
		time.Sleep(time.Until(stopped.Add(window)))
		f.alive("after the handover")
		w.stop()

		if len(w.gaps) > 0 {
			t.Errorf("%s: a live entry left the store during the handover: %v", tg.Backend, w.gaps)
		}
		if len(w.leaders) != 1 || w.leaders[0] != leader {
			t.Errorf("%s: the lease named %v during the handover; want %s only", tg.Backend, w.leaders, leader)
		}
		if len(w.labels) > 0 {
			t.Errorf("%s: leader labels moved during the handover: %v", tg.Backend, w.labels)
		}
		figure(t, "%s handover: standby elected %s after the active manager stopped; watched %s (%d snapshots): "+
			"no entry gone, leader %s kept (lease empty for at most %s), labels unchanged",
			tg.Backend, round2(tookOver), window, w.snapshots, leader, round2(w.longestNoLeader))
	})
}

func waitElected(t *testing.T, m *operatortest.Manager, who string) {
	t.Helper()
	select {
	case <-m.Elected:
	case <-time.After(settle):
		t.Fatalf("%s was not elected within %s", who, settle)
	}
}

// handoverWatch records, from a store client and an API client of the test's own, whatever
// would show a handover that hurts: an entry missing, another leader, a label moved.
type handoverWatch struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Written by the watchers, read after stop.
	snapshots       int
	gaps            []string
	leaders         []string // distinct non-empty status.leader values, in order
	labels          []string
	longestNoLeader time.Duration
}

func watchHandover(t *testing.T, f *fixture, leader string) *handoverWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &handoverWatch{cancel: cancel, leaders: []string{leader}}
	store := f.tg.Open(t)
	snaps, err := store.WatchTree(ctx, discovery.ServiceDir(f.prefix, service))
	if err != nil {
		t.Fatal(err)
	}
	want := wantedEndpoints()
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		for pairs := range snaps {
			var got []string
			for _, p := range pairs {
				if e, err := discovery.Decode(p.Value); err == nil {
					got = append(got, e.Endpoint())
				}
			}
			slices.Sort(got)
			w.snapshots++
			if !slices.Equal(got, want) {
				w.gaps = append(w.gaps, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), got))
			}
		}
	}()
	go func() {
		defer w.wg.Done()
		var noLeaderSince time.Time
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			lease := &kvopv1.LeaderLease{}
			if err := operatortest.Client.Get(ctx, f.key(leaseName), lease); err != nil {
				continue
			}
			switch l := lease.Status.Leader; {
			case l == "" && noLeaderSince.IsZero():
				noLeaderSince = time.Now()
			case l != "":
				if !noLeaderSince.IsZero() {
					w.longestNoLeader = max(w.longestNoLeader, time.Since(noLeaderSince))
					noLeaderSince = time.Time{}
				}
				if w.leaders[len(w.leaders)-1] != l {
					w.leaders = append(w.leaders, l)
				}
			}
			labels, err := f.leaderLabels()
			if err != nil {
				continue
			}
			for pod, v := range labels {
				if (pod == leader) != (v == "true") {
					w.labels = append(w.labels, fmt.Sprintf("%s %s=%q", time.Now().Format("15:04:05.000"), pod, v))
				}
			}
		}
	}()
	return w
}

// stop ends the watchers and waits for them (so their findings may be read).
func (w *handoverWatch) stop() {
	w.cancel()
	w.wg.Wait()
}
