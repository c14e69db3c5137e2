//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/discovery"
	"github.com/kvop/kvop/pkg/kvstore"
	_ "github.com/kvop/kvop/pkg/kvstore/all"
)

const (
	members = 3
	entries = 16              // registrations kept alive through the faults
	ttl     = 2 * time.Second // registration and lock TTL (etcdv2: see TestEtcdV2Cluster)
	// stallBound is how long kvop may fail writes after a member dies. The real stalls are
	// far below it (see docs/reliability.md); it only catches a client that never fails over.
	stallBound = 20 * time.Second
	// attemptTimeout bounds each write of the stall probe. A request that reaches a member
	// during an election can wait for its whole timeout (etcd drops proposals while it has no
	// leader and answers only after its request timeout), so a short one measures when the
	// cluster serves again rather than how patient one request was.
	attemptTimeout = 500 * time.Millisecond
)

// The clusters run one after the other: each takes the two cores for its elections, and
// stalls measured side by side with another cluster would measure the machine instead.

func TestEtcdCluster(t *testing.T) {
	runClusterFaults(t, kvstore.Etcd, testservers.EtcdCluster(t, members), nil, ttl)
}

func TestEtcdV2Cluster(t *testing.T) {
	// v2 TTLs are wall-clock deadlines that a leader change does not extend, and a request that
	// reaches a member during the election can hang; the store bounds each keep-alive attempt
	// by a third of the TTL so that a short TTL survives the kill of the etcd leader.
	runClusterFaults(t, kvstore.EtcdV2, testservers.EtcdV2Cluster(t, members), nil, ttl)
}

func TestZooKeeperEnsemble(t *testing.T) {
	// 4 s sessions: long enough to move to another server while the ensemble elects a new
	// leader (a client gives its locks up after a quarter of it, 1 s, without a server).
	runClusterFaults(t, kvstore.ZooKeeper, testservers.ZooKeeperEnsemble(t, members), &kvstore.Config{SessionTimeout: 4 * time.Second}, ttl)
}

func TestConsulCluster(t *testing.T) {
	runClusterFaults(t, kvstore.Consul, testservers.ConsulCluster(t, members), nil, ttl)
}

// ttlBound is how long a registration whose keep-alive stopped may still be seen.
func ttlBound(backend kvstore.Backend, cfg *kvstore.Config, ttl time.Duration) time.Duration {
	if backend == kvstore.Consul {
		return 2*ttl + time.Second // the test servers lower session_ttl_min to 1 s
	}
	return kvstore.TTLBound(backend, ttl, cfg.SessionTimeout)
}

// runClusterFaults kills a follower and then the leader of cl (restarting each afterwards)
// under a workload of registrations, an election among three candidates and a write probe.
func runClusterFaults(t *testing.T, backend kvstore.Backend, cl *testservers.Cluster, cfg *kvstore.Config, ttl time.Duration) {
	if cfg == nil {
		cfg = &kvstore.Config{}
	}
	cfg.ConnectionTimeout = 5 * time.Second
	ctx := context.Background()
	// Every client gets all members' addresses, as a real deployment would configure it.
	open := func() kvstore.Store {
		t.Helper()
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s, err := kvstore.New(octx, backend, cl.Endpoints(), cfg)
		if err != nil {
			t.Fatalf("opening %s on %v: %v", backend, cl.Endpoints(), err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	prefix := "faults/" + string(backend)
	probe := open()
	reg := discovery.NewRegistry(open(), prefix)
	want := make([]string, entries)
	for i := range entries {
		e := discovery.Entry{Service: "api", Address: fmt.Sprintf("10.0.0.%d", i+1), Port: 8080}
		if err := reg.Register(ctx, e, ttl); err != nil {
			t.Fatalf("register %d: %v", i, err)
		}
		want[i] = e.Endpoint()
	}
	watcher := startSampler(discovery.NewRegistry(open(), prefix), entries)
	el := startElection(t, open, prefix+"/leader", 3, ttl)
	el.awaitLeader(30 * time.Second)

	var report []string
	var longest time.Duration
	for _, victim := range []string{"follower", "leader"} {
		leader, err := cl.WaitLeader(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		i := leader
		if victim == "follower" {
			i = cl.Follower(leader)
		}
		killed := time.Now()
		cl.Members[i].Kill()
		stall := writeStall(t, probe, prefix+"/probe-"+victim, killed)
		// The candidates' stores lost the member too: a leader must lead again, whether the
		// old one kept its lock or not.
		el.awaitLeader(30 * time.Second)
		election := "the candidates' leader kept its lock"
		if changed, took := el.failoverSince(killed); changed {
			election = fmt.Sprintf("the candidates' lock changed hands, a new tenure %s after the kill", took.Round(time.Millisecond))
		}
		newLeader, err := cl.WaitLeader(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: killed the %s (member %d at %s; member %d leads now): first write %s after the kill; %s",
			backend, victim, i, killed.Format("15:04:05.000"), newLeader, stall.Round(time.Millisecond), election)
		report = append(report, fmt.Sprintf("%s kill: stall %s", victim, stall.Round(time.Millisecond)))
		longest = max(longest, stall)
		if stall > stallBound {
			t.Errorf("%s: writes failed for %s after the %s died (bound %s)", backend, stall, victim, stallBound)
		}
		if err := cl.Members[i].Restart(); err != nil {
			t.Fatalf("restarting member %d: %v", i, err)
		}
	}

	// A registration whose keep-alive died in the faults is gone after its TTL bound: wait
	// that long, then every entry must still be there.
	time.Sleep(ttlBound(backend, cfg, ttl) + time.Second)
	got, err := reg.Entries(ctx, "api")
	if err != nil {
		t.Fatalf("listing the registrations: %v", err)
	}
	var have []string
	for _, e := range got {
		have = append(have, e.Endpoint())
	}
	if strings.Join(have, ",") != strings.Join(slices.Sorted(slices.Values(want)), ",") {
		t.Errorf("%s: registrations after the faults: %d of %d: %v", backend, len(have), entries, have)
	}
	samples, short, errs := watcher.stop()
	t.Logf("%s: registrations: %d lists read during the faults (%d failed while the cluster failed over), %d short", backend, samples, errs, len(short))
	if len(short) > 0 {
		t.Errorf("%s: a registration went missing during the faults: %v", backend, short)
	}
	el.stop()
	t.Logf("%s cluster of %d: longest stall %s (%s)", backend, members, longest.Round(time.Millisecond), strings.Join(report, "; "))
}

// writeStall writes key until a Put and the Get after it succeed, and returns the time from
// killed until then: the outage a kvop client sees.
func writeStall(t *testing.T, s kvstore.Store, key string, killed time.Time) time.Duration {
	t.Helper()
	value := []byte(killed.Format(time.RFC3339Nano))
	var lastErr error
	for time.Since(killed) < stallBound+10*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		err := s.Put(ctx, key, value, nil)
		if err == nil {
			var pair *kvstore.KVPair
			pair, err = s.Get(ctx, key)
			if err == nil && string(pair.Value) != string(value) {
				err = fmt.Errorf("read back %q", pair.Value)
			}
		}
		cancel()
		if err == nil {
			return time.Since(killed)
		}
		lastErr = err
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no successful write within %s of the kill: %v", stallBound+10*time.Second, lastErr)
	return 0
}

// sampler lists a service's registrations every 100 ms through its own client and records
// every successful list that misses an entry.
type sampler struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	samples int
	errs    int
	short   []string
}

func startSampler(reg *discovery.Registry, want int) *sampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for ctx.Err() == nil {
			lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
			got, err := reg.Entries(lctx, "api")
			lcancel()
			s.mu.Lock()
			switch {
			case err != nil && !errors.Is(err, context.Canceled):
				s.errs++
			case err == nil:
				s.samples++
				if len(got) < want {
					s.short = append(s.short, fmt.Sprintf("%d of %d at %s", len(got), want, time.Now().Format("15:04:05.000")))
				}
			}
			s.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *sampler) stop() (samples int, short []string, errs int) {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.short, s.errs
}
