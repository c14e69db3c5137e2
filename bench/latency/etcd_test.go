//go:build bench

package latency

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/kvop/kvop/bench/internal/results"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/pkg/kvstore"
)

// etcdPeer measures etcd's own concurrency.Election on kvop's etcd server: handover
// (Resign → the waiting Campaign returns), follower (Observe, from the Campaign's return) and
// crash (SIGKILL of the process whose Campaign won, with a session TTL of cfg.ttl).
func etcdPeer(t *testing.T, rec *recorder, tg *backendtest.Target, cfg config) {
	const subject = "etcd concurrency.Election"
	note := fmt.Sprintf("session TTL %s", cfg.ttl)
	hand := rec.peer(results.Handover, kvstore.Etcd, subject, "")
	foll := rec.peer(results.Follower, kvstore.Etcd, "etcd Election.Observe", "")
	rec.run(t, "etcd/handover", func(t *testing.T) { etcdHandover(t, tg, cfg, hand, foll) }, hand, foll)
	crash := rec.peer(results.Crash, kvstore.Etcd, subject, note)
	rec.run(t, "etcd/crash", func(t *testing.T) { etcdCrash(t, tg, cfg, crash) }, crash)
}

func etcdClient(addrs []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: addrs, DialTimeout: 10 * time.Second})
}

// etcdSession opens a client with one session of ttl on it, both closed when the test ends.
func etcdSession(t *testing.T, addrs []string, ttl time.Duration) *concurrency.Session {
	t.Helper()
	cli, err := etcdClient(addrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(int(ttl/time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// campaignAsync runs Campaign in the background and stamps its return.
func campaignAsync(ctx context.Context, e *concurrency.Election, val string) <-chan stamp[error] {
	done := make(chan stamp[error], 1)
	go func() {
		err := e.Campaign(ctx, val)
		done <- stamp[error]{err, time.Now()}
	}()
	return done
}

func waitCampaign(done <-chan stamp[error], timeout time.Duration) (time.Time, error) {
	select {
	case r := <-done:
		return r.at, r.v
	case <-time.After(timeout):
		return time.Time{}, fmt.Errorf("Campaign did not return within %s", timeout)
	}
}

func etcdHandover(t *testing.T, tg *backendtest.Target, cfg config, hand, foll *results.Series) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pfx := uniqueKey("etcd-election")
	observer := concurrency.NewElection(etcdSession(t, tg.Addrs, cfg.ttl), pfx)
	observed := make(chan stamp[string], 1024)
	go func() {
		for resp := range observer.Observe(ctx) {
			if len(resp.Kvs) > 0 {
				observed <- stamp[string]{string(resp.Kvs[0].Value), time.Now()}
			}
		}
	}()

	type cand struct {
		e    *concurrency.Election
		name string
	}
	leader := cand{concurrency.NewElection(etcdSession(t, tg.Addrs, cfg.ttl), pfx), "a"}
	waiting := cand{concurrency.NewElection(etcdSession(t, tg.Addrs, cfg.ttl), pfx), "b"}
	if err := leader.e.Campaign(ctx, leader.name); err != nil {
		t.Fatal(err)
	}
	waitingDone := campaignAsync(ctx, waiting.e, waiting.name)
	time.Sleep(settle)
	for range cfg.handovers {
		t0 := time.Now()
		if err := leader.e.Resign(ctx); err != nil {
			t.Fatal(err)
		}
		t1, err := waitCampaign(waitingDone, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		hand.Samples = append(hand.Samples, t1.Sub(t0))
		name := waiting.name
		tf, err := waitFor(observed, t0, 5*time.Second, func(v string) bool { return v == name })
		if err != nil {
			t.Fatalf("Observe did not name %s: %v", name, err)
		}
		foll.Samples = append(foll.Samples, tf.Sub(t1))
		waitingDone = campaignAsync(ctx, leader.e, leader.name)
		leader, waiting = waiting, leader
		time.Sleep(settle)
	}
	if err := leader.e.Resign(ctx); err != nil {
		t.Error(err)
	}
}

const roleEtcdElection = "etcd-election"

// runEtcdElection is the leader process of etcdCrash.
func runEtcdElection(spec backendtest.ChildSpec, out io.Writer) error {
	ttl, err := strconv.Atoi(spec.Args["ttl"])
	if err != nil {
		return err
	}
	cli, err := etcdClient(spec.Addrs)
	if err != nil {
		return err
	}
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		return err
	}
	if err := concurrency.NewElection(s, spec.Args["prefix"]).Campaign(context.Background(), "child"); err != nil {
		return err
	}
	fmt.Fprintln(out, "elected")
	<-s.Done() // until killed; a lost session ends the child
	return fmt.Errorf("session lost")
}

func etcdCrash(t *testing.T, tg *backendtest.Target, cfg config, s *results.Series) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range cfg.crashes {
		pfx := uniqueKey("etcd-crash")
		child := backendtest.StartChild(t, tg, roleEtcdElection,
			map[string]string{"prefix": pfx, "ttl": strconv.Itoa(int(cfg.ttl / time.Second))})
		child.WaitLine(t, "elected", time.Minute)
		e := concurrency.NewElection(etcdSession(t, tg.Addrs, cfg.ttl), pfx)
		done := campaignAsync(ctx, e, "parent")
		time.Sleep(settle)
		t0 := time.Now()
		child.Kill()
		t1, err := waitCampaign(done, cfg.ttl+30*time.Second)
		if err != nil {
			t.Fatalf("crash %d: %v", i+1, err)
		}
		s.Samples = append(s.Samples, t1.Sub(t0))
		if err := e.Resign(ctx); err != nil {
			t.Error(err)
		}
	}
}
