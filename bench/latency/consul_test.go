//go:build bench

package latency

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kvop/kvop/bench/internal/results"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/pkg/kvstore"
)

// consulPeer measures consul's api.Lock on kvop's Consul server (session_ttl_min 1s, so that
// short session TTLs are allowed; a default server refuses TTLs under 10s).
//
//	handover: Unlock → the waiting Lock returns (defaults: Unlock releases, no lock-delay)
//	crash:    SIGKILL of the holder → the waiting Lock returns; three settings:
//	          TTL as kvop's and lock-delay 1ms (what kvop's consul lock uses), cfg.crashes times;
//	          TTL as kvop's with the default 15s lock-delay, once (~20s);
//	          all defaults (TTL 15s, lock-delay 15s), once, only with BENCH_SLOW_PEERS=1 (~45s)
func consulPeer(t *testing.T, rec *recorder, tg *backendtest.Target, cfg config) {
	const subject = "consul api.Lock"
	hand := rec.peer(results.Handover, kvstore.Consul, subject, "defaults")
	rec.run(t, "consul/handover", func(t *testing.T) { consulHandover(t, tg, cfg, hand) }, hand)

	ttl := cfg.ttl.String()
	tuned := rec.peer(results.Crash, kvstore.Consul, subject, fmt.Sprintf("SessionTTL %s, LockDelay 1ms (as kvop)", ttl))
	rec.run(t, "consul/crash-tuned", func(t *testing.T) {
		consulCrash(t, tg, cfg.crashes, consulLockSettings{ttl: ttl, lockDelay: time.Millisecond}, tuned)
	}, tuned)
	short := rec.peer(results.Crash, kvstore.Consul, subject, fmt.Sprintf("SessionTTL %s, default 15s lock-delay; 1 run", ttl))
	rec.run(t, "consul/crash-short-ttl", func(t *testing.T) {
		consulCrash(t, tg, 1, consulLockSettings{ttl: ttl}, short)
	}, short)

	const defaults = "defaults: SessionTTL 15s, lock-delay 15s; 1 run"
	if !cfg.slowPeers {
		rec.skip(results.Crash, kvstore.Consul, subject, defaults, "slow (set BENCH_SLOW_PEERS=1)",
			"≈ 2×TTL + 15s lock-delay = up to 45s; swarm measured 40s (swarm #1227, shared/notes/peers.md)")
		return
	}
	slow := rec.peer(results.Crash, kvstore.Consul, subject, defaults)
	rec.run(t, "consul/crash-defaults", func(t *testing.T) { consulCrash(t, tg, 1, consulLockSettings{}, slow) }, slow)
}

// consulLockSettings are the api.LockOptions the crash runs vary; zero values are api's
// defaults (SessionTTL 15s; a zero LockDelay is left out of the request, so the server's 15s).
type consulLockSettings struct {
	ttl       string
	lockDelay time.Duration
}

func (s consulLockSettings) args(key string) map[string]string {
	return map[string]string{"key": key, "ttl": s.ttl, "lockdelay": s.lockDelay.String()}
}

func newConsulLock(addr, key, value string, s consulLockSettings) (*api.Lock, error) {
	c, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		return nil, err
	}
	return c.LockOpts(&api.LockOptions{Key: key, Value: []byte(value), SessionTTL: s.ttl, LockDelay: s.lockDelay})
}

// lockAsync runs Lock in the background and stamps its return.
func lockAsync(l *api.Lock, stop <-chan struct{}) <-chan stamp[error] {
	done := make(chan stamp[error], 1)
	go func() {
		lost, err := l.Lock(stop)
		if err == nil && lost == nil {
			err = fmt.Errorf("Lock stopped")
		}
		done <- stamp[error]{err, time.Now()}
	}()
	return done
}

func waitLock(done <-chan stamp[error], timeout time.Duration) (time.Time, error) {
	select {
	case r := <-done:
		return r.at, r.v
	case <-time.After(timeout):
		return time.Time{}, fmt.Errorf("Lock did not return within %s", timeout)
	}
}

func consulHandover(t *testing.T, tg *backendtest.Target, cfg config, hand *results.Series) {
	key := uniqueKey("consul-lock")
	stop := make(chan struct{})
	leader, err := newConsulLock(tg.Addrs[0], key, "a", consulLockSettings{})
	if err != nil {
		t.Fatal(err)
	}
	waiting, err := newConsulLock(tg.Addrs[0], key, "b", consulLockSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.Lock(stop); err != nil {
		t.Fatal(err)
	}
	// At the end the waiter must see stop before the last Unlock wakes it, or it would take
	// the lock and keep renewing its session.
	defer func() { close(stop); _ = leader.Unlock() }()
	waitingDone := lockAsync(waiting, stop)
	time.Sleep(settle)
	for range cfg.handovers {
		t0 := time.Now()
		if err := leader.Unlock(); err != nil {
			t.Fatal(err)
		}
		t1, err := waitLock(waitingDone, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		hand.Samples = append(hand.Samples, t1.Sub(t0))
		waitingDone = lockAsync(leader, stop)
		leader, waiting = waiting, leader
		time.Sleep(settle)
	}
}

const roleConsulLock = "consul-lock"

// runConsulLock is the leader process of consulCrash.
func runConsulLock(spec backendtest.ChildSpec, out io.Writer) error {
	delay, err := time.ParseDuration(spec.Args["lockdelay"])
	if err != nil {
		return err
	}
	l, err := newConsulLock(spec.Addrs[0], spec.Args["key"], "child", consulLockSettings{ttl: spec.Args["ttl"], lockDelay: delay})
	if err != nil {
		return err
	}
	lost, err := l.Lock(nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "elected")
	<-lost // until killed
	return fmt.Errorf("lock lost")
}

func consulCrash(t *testing.T, tg *backendtest.Target, n int, s consulLockSettings, series *results.Series) {
	for i := range n {
		key := uniqueKey("consul-crash")
		child := backendtest.StartChild(t, tg, roleConsulLock, s.args(key))
		child.WaitLine(t, "elected", time.Minute)
		l, err := newConsulLock(tg.Addrs[0], key, "parent", s)
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		done := lockAsync(l, stop)
		time.Sleep(settle)
		t0 := time.Now()
		child.Kill()
		// Up to 2×TTL for the session to expire, the lock-delay, and api.Lock's 5s retry step.
		t1, err := waitLock(done, 2*time.Minute)
		close(stop)
		if err != nil {
			t.Fatalf("crash %d: %v", i+1, err)
		}
		series.Samples = append(series.Samples, t1.Sub(t0))
		if err := l.Unlock(); err != nil {
			t.Error(err)
		}
	}
}
