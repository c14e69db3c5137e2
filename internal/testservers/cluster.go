package testservers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Cluster is a replicated backend of several members (an etcd cluster, a ZooKeeper ensemble,
// Consul servers), each a Server of its own on loopback ports. A member can be killed,
// restarted, paused and resumed like any single server; the others keep serving as long as a
// quorum of them runs.
//
// Wipe is not meant for members: a wiped member would come back with a new identity that the
// others do not know (etcd refuses it; ZooKeeper loses its myid).
type Cluster struct {
	Name    string    // "etcd", "etcdv2", "zookeeper" or "consul"
	Members []*Server // in the order of their member ids (etcd name m<i>, ZooKeeper myid i+1, Consul node kvop-<i>)

	// leader returns the index of the member that leads, asking only running members.
	leader func(ctx context.Context) (int, error)
}

// Endpoints returns every member's client address, for kvstore.New: a client given all of
// them fails over when one member goes.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.Addr
	}
	return out
}

// Leader returns the index in Members of the member that leads the cluster now (etcd's raft
// leader, ZooKeeper's "Mode: leader", Consul's raft leader). It fails while there is none,
// e.g. during an election.
func (c *Cluster) Leader(ctx context.Context) (int, error) { return c.leader(ctx) }

// WaitLeader polls Leader until a running member leads or timeout passes.
func (c *Cluster) WaitLeader(timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	for {
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		var i int
		i, err = c.leader(qctx)
		qcancel()
		if err == nil {
			return i, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("%s cluster: no leader within %s: %w", c.Name, timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Follower returns the index of a running member that does not lead (-1 when there is none).
func (c *Cluster) Follower(leader int) int {
	for i, m := range c.Members {
		if i != leader && m.Pid() != 0 {
			return i
		}
	}
	return -1
}

// Stop stops every member (in parallel: a member that lost its quorum would otherwise delay
// the others' shutdown) and removes their data.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, m := range c.Members {
		wg.Go(m.Stop)
	}
	wg.Wait()
}

// running returns the indexes of the members whose process runs.
func (c *Cluster) running() []int {
	var out []int
	for i, m := range c.Members {
		if m.Pid() != 0 {
			out = append(out, i)
		}
	}
	return out
}

// errNoLeader: no running member says it leads (an election is going on, or quorum is lost).
var errNoLeader = errors.New("no member leads")

// startMembers starts every member at once: no member of a fresh cluster answers before a
// quorum of them runs, so starting them one after the other would never finish.
func startMembers(name string, members []*Server) (*Cluster, error) {
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() { errs[i] = m.start() })
	}
	wg.Wait()
	c := &Cluster{Name: name, Members: members}
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, fmt.Errorf("starting a %d-member %s cluster: %w", len(members), name, err)
	}
	return c, nil
}

// newMembers prepares n member processes called <name>-<i> (each in a data directory of its
// own); on error the directories are removed again.
func newMembers(name string, n int) ([]*Process, error) {
	if n < 1 {
		return nil, fmt.Errorf("a %s cluster needs at least one member, got %d", name, n)
	}
	procs := make([]*Process, 0, n)
	for i := range n {
		p, err := newProcess(fmt.Sprintf("%s-%d", name, i))
		if err != nil {
			for _, q := range procs {
				q.Stop()
			}
			return nil, err
		}
		p.Name = fmt.Sprintf("%s member %d", name, i)
		procs = append(procs, p)
	}
	return procs, nil
}

func stopProcs(procs []*Process) {
	for _, p := range procs {
		p.Stop()
	}
}

// clusterForTest starts a cluster for one test and stops it when the test ends.
func clusterForTest(t testing.TB, start func(int) (*Cluster, error), n int) *Cluster {
	t.Helper()
	c, err := start(n)
	if err != nil {
		t.Fatalf("test cluster: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// EtcdCluster starts an n-member etcd cluster (current release, v3 API) for the test.
func EtcdCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return clusterForTest(t, StartEtcdCluster, n)
}

// EtcdV2Cluster starts an n-member etcd 3.4 cluster with the v2 API enabled for the test.
func EtcdV2Cluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return clusterForTest(t, StartEtcdV2Cluster, n)
}

// ZooKeeperEnsemble starts an n-server ZooKeeper ensemble for the test.
func ZooKeeperEnsemble(t testing.TB, n int) *Cluster {
	t.Helper()
	return clusterForTest(t, StartZooKeeperEnsemble, n)
}

// ConsulCluster starts n Consul server agents that form one cluster, for the test.
func ConsulCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return clusterForTest(t, StartConsulCluster, n)
}

// joinf formats one item per index and joins them with sep.
func joinf(n int, sep string, item func(i int) string) string {
	parts := make([]string, n)
	for i := range n {
		parts[i] = item(i)
	}
	return strings.Join(parts, sep)
}
