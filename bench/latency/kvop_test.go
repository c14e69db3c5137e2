//go:build bench

package latency

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/kvop/kvop/bench/internal/results"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/leadership"
)

// candidate is a campaigning kvop Candidate whose elected values are stamped on arrival.
type candidate struct {
	c       *leadership.Candidate
	elected <-chan stamp[bool]
	cancel  context.CancelFunc
}

func campaign(st kvstore.Store, key, node string, ttl time.Duration) *candidate {
	ctx, cancel := context.WithCancel(context.Background())
	c := leadership.NewCandidate(st, key, node, ttl)
	elected, errs := c.RunForElection(ctx)
	logErrs("candidate "+node, errs)
	return &candidate{c: c, elected: stamped(elected), cancel: cancel}
}

// stop ends the campaign (releasing leadership) and waits until it has.
func (c *candidate) stop() {
	c.cancel()
	for range c.elected {
	}
}

// waitElected returns when this candidate was told it leads, no earlier than after.
func (c *candidate) waitElected(after time.Time, timeout time.Duration) (time.Time, error) {
	at, err := waitFor(c.elected, after, timeout, func(v bool) bool { return v })
	if err != nil {
		return at, fmt.Errorf("candidate %s not elected: %w", c.c.Node(), err)
	}
	return at, nil
}

// kvopHandover alternates leadership between two candidates (each on a store client of its
// own) by Resign, n times. Handover: Resign() called → the other candidate's elected<-true.
// Follower: a third client's Follower names the new leader, measured from the winner's
// elected<-true (negative when the follower heard first).
func kvopHandover(t *testing.T, tg *backendtest.Target, cfg config, hand, foll *results.Series) {
	tg = tg.Fresh(t) // boltdb: a file of its own
	key := uniqueKey("handover")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leaders, errs := leadership.NewFollower(tg.Open(t), key).FollowElection(ctx)
	logErrs("follower", errs)
	follower := stamped(leaders)

	a := campaign(tg.Open(t), key, "a", cfg.ttl)
	defer a.stop()
	if _, err := a.waitElected(time.Time{}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	b := campaign(tg.Open(t), key, "b", cfg.ttl)
	defer b.stop()
	time.Sleep(settle)

	leader, waiting := a, b
	for range cfg.handovers {
		t0 := time.Now()
		leader.c.Resign()
		t1, err := waiting.waitElected(t0, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		hand.Samples = append(hand.Samples, t1.Sub(t0))
		name := waiting.c.Node()
		tf, err := waitFor(follower, t0, 5*time.Second, func(v string) bool { return v == name })
		if err != nil {
			t.Fatalf("follower did not name %s: %v", name, err)
		}
		foll.Samples = append(foll.Samples, tf.Sub(t1))
		leader, waiting = waiting, leader
		time.Sleep(settle)
	}
}

const roleKvopCandidate = "kvop-candidate"

// runKvopCandidate is the leader process of kvopCrash: it campaigns, prints "elected" when it
// leads, and lives until it is killed.
func runKvopCandidate(spec backendtest.ChildSpec, out io.Writer) error {
	ttl, err := time.ParseDuration(spec.Args["ttl"])
	if err != nil {
		return err
	}
	st, err := spec.Open(context.Background())
	if err != nil {
		return err
	}
	elected, errs := leadership.NewCandidate(st, spec.Args["key"], spec.Args["node"], ttl).RunForElection(context.Background())
	logErrs("child candidate", errs)
	for v := range elected {
		if v {
			fmt.Fprintln(out, "elected")
		}
	}
	return fmt.Errorf("campaign ended")
}

// kvopCrash: a child process leads, a candidate here waits, the child is SIGKILLed; measured
// from the kill to this candidate's elected<-true. BoltDB allows one process per file, so there
// the waiting candidate can only open the file after the kill (its open is part of the time).
func kvopCrash(t *testing.T, tg *backendtest.Target, cfg config, s *results.Series) {
	timeout := tg.TTLBound(cfg.ttl) + 30*time.Second
	for i := range cfg.crashes {
		target := tg.Fresh(t)
		key := uniqueKey("crash")
		child := backendtest.StartChild(t, target, roleKvopCandidate,
			map[string]string{"key": key, "node": "child", "ttl": cfg.ttl.String()})
		child.WaitLine(t, "elected", time.Minute)

		var st kvstore.Store
		var c *candidate
		if !target.SingleProcess {
			st = openStore(t, target, 30*time.Second)
			c = campaign(st, key, "parent", cfg.ttl)
			time.Sleep(settle)
		}
		t0 := time.Now()
		child.Kill()
		if target.SingleProcess {
			st = openStore(t, target, 30*time.Second)
			c = campaign(st, key, "parent", cfg.ttl)
		}
		t1, err := c.waitElected(t0, timeout)
		if err != nil {
			t.Fatalf("crash %d: %v", i+1, err)
		}
		s.Samples = append(s.Samples, t1.Sub(t0))
		c.stop()
		_ = st.Close()
	}
}

// openStore opens tg's store, retrying while it is not reachable yet (a BoltDB file whose
// killed owner the kernel is still releasing).
func openStore(t *testing.T, tg *backendtest.Target, timeout time.Duration) kvstore.Store {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		st, err := kvstore.New(ctx, tg.Backend, tg.Addrs, tg.Config)
		cancel()
		if err == nil {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("opening %s: %v", tg.Backend, err)
		}
		fmt.Fprintf(os.Stderr, "latency: opening %s: %v (retrying)\n", tg.Backend, err)
		time.Sleep(10 * time.Millisecond)
	}
}
