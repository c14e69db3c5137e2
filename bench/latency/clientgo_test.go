//go:build bench

package latency

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/kvop/kvop/bench/internal/results"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// client-go has no defaults of its own; these are the ones Kubernetes components and
// controller-runtime use (component-base's LeaderElectionConfiguration).
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// clientGoPeer measures client-go's leaderelection on a coordination.k8s.io Lease of a real
// kube-apiserver (envtest; the apiserver stores the Lease in its own etcd). The rows sit beside
// kvop on etcd. A handover is a cancelled Run (client-go has no Resign):
//
//	ReleaseOnCancel: the leader empties the Lease; a waiter takes it on its next retry
//	                 (RetryPeriod 2s with jitter), cfg.handovers times
//	without it:      a waiter takes it when the lease expires, ~15s; once, BENCH_SLOW_PEERS=1
//	crash:           SIGKILL of the leader process, ~15s; once, BENCH_SLOW_PEERS=1
func clientGoPeer(t *testing.T, rec *recorder, cfg config) {
	const subject = "client-go leaderelection (Lease)"
	defaults := fmt.Sprintf("defaults %s/%s/%s", leaseDuration, renewDeadline, retryPeriod)
	release := rec.peer(results.Handover, kvstore.Etcd, subject, defaults+", ReleaseOnCancel")
	var kube *testservers.Kube
	rec.run(t, "client-go/start", func(t *testing.T) {
		var err error
		if kube, err = testservers.StartKube(testservers.KubeOptions{}); err != nil {
			t.Fatal(err)
		}
	}, release)
	if kube == nil {
		return
	}
	defer func() {
		if err := kube.Stop(); err != nil {
			t.Errorf("stopping kube-apiserver: %v", err)
		}
	}()
	cs, err := kubernetes.NewForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	rec.run(t, "client-go/handover-release", func(t *testing.T) {
		clientGoHandover(t, cs, cfg.handovers, true, release)
	}, release)

	const why = "slow (set BENCH_SLOW_PEERS=1)"
	if !cfg.slowPeers {
		rec.skip(results.Handover, kvstore.Etcd, subject, defaults+", no ReleaseOnCancel; 1 run", why,
			"≈ LeaseDuration (15s) + up to RetryPeriod: the waiter must see the lease expire")
		rec.skip(results.Crash, kvstore.Etcd, subject, defaults+"; 1 run", why,
			"~15s with defaults (shared/notes/peers.md)")
		return
	}
	noRelease := rec.peer(results.Handover, kvstore.Etcd, subject, defaults+", no ReleaseOnCancel; 1 run")
	rec.run(t, "client-go/handover-no-release", func(t *testing.T) {
		clientGoHandover(t, cs, 1, false, noRelease)
	}, noRelease)
	crash := rec.peer(results.Crash, kvstore.Etcd, subject, defaults+"; 1 run")
	rec.run(t, "client-go/crash", func(t *testing.T) { clientGoCrash(t, kube.Config, cs, crash) }, crash)
}

// elector is one Run of a client-go LeaderElector.
type elector struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}
}

// startElector runs an elector for lease as id; started gets id, stamped, when it leads.
func startElector(cs kubernetes.Interface, lease, id string, releaseOnCancel bool, started chan<- stamp[string]) (*elector, error) {
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: lease, Namespace: "default"},
			Client:     cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		},
		LeaseDuration:   leaseDuration,
		RenewDeadline:   renewDeadline,
		RetryPeriod:     retryPeriod,
		ReleaseOnCancel: releaseOnCancel,
		Name:            lease,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { started <- stamp[string]{id, time.Now()} },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &elector{id: id, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		le.Run(ctx)
	}()
	return e, nil
}

func (e *elector) stop() {
	e.cancel()
	<-e.done
}

func clientGoHandover(t *testing.T, cs kubernetes.Interface, n int, releaseOnCancel bool, s *results.Series) {
	lease := fmt.Sprintf("bench-%x", time.Now().UnixNano())
	started := make(chan stamp[string], 64)
	byID := func(id string) func(string) bool { return func(v string) bool { return v == id } }
	leader, err := startElector(cs, lease, "a", releaseOnCancel, started)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waitFor(started, time.Time{}, time.Minute, byID("a")); err != nil {
		t.Fatal(err)
	}
	waiting, err := startElector(cs, lease, "b", releaseOnCancel, started)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { leader.stop(); waiting.stop() }()
	time.Sleep(settle)
	for range n {
		t0 := time.Now()
		leader.cancel()
		t1, err := waitFor(started, t0, leaseDuration+time.Minute, byID(waiting.id))
		if err != nil {
			t.Fatal(err)
		}
		s.Samples = append(s.Samples, t1.Sub(t0))
		// Only now may the old leader run again: it would find the released Lease empty and
		// could take it back before the waiter's next retry.
		<-leader.done
		if leader, err = startElector(cs, lease, leader.id, releaseOnCancel, started); err != nil {
			t.Fatal(err)
		}
		leader, waiting = waiting, leader
		time.Sleep(settle)
	}
}

const roleClientGoLease = "client-go-lease"

// restConfig is what a child needs of the envtest rest.Config to reach the apiserver.
type restConfig struct {
	Host                   string
	CA, Cert, Key          []byte
	BearerToken, Namespace string
}

// runClientGoLease is the leader process of clientGoCrash.
func runClientGoLease(spec backendtest.ChildSpec, out io.Writer) error {
	var rc restConfig
	if err := json.Unmarshal([]byte(spec.Args["rest"]), &rc); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: rc.Host, BearerToken: rc.BearerToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: rc.CA, CertData: rc.Cert, KeyData: rc.Key}})
	if err != nil {
		return err
	}
	started := make(chan stamp[string], 1)
	e, err := startElector(cs, spec.Args["lease"], "child", false, started)
	if err != nil {
		return err
	}
	select {
	case <-started:
		fmt.Fprintln(out, "elected")
	case <-e.done:
		return fmt.Errorf("elector ended before it led")
	}
	<-e.done // until killed
	return fmt.Errorf("leadership lost")
}

func clientGoCrash(t *testing.T, cfg *rest.Config, cs kubernetes.Interface, s *results.Series) {
	raw, err := json.Marshal(restConfig{Host: cfg.Host, CA: cfg.CAData, Cert: cfg.CertData, Key: cfg.KeyData, BearerToken: cfg.BearerToken})
	if err != nil {
		t.Fatal(err)
	}
	lease := fmt.Sprintf("bench-crash-%x", time.Now().UnixNano())
	// StartChild wants a store target; the child only reads Args.
	tg := &backendtest.Target{Backend: kvstore.Etcd, Addrs: []string{cfg.Host}, Config: &kvstore.Config{}}
	child := backendtest.StartChild(t, tg, roleClientGoLease, map[string]string{"rest": string(raw), "lease": lease})
	child.WaitLine(t, "elected", time.Minute)
	started := make(chan stamp[string], 4)
	e, err := startElector(cs, lease, "parent", false, started)
	if err != nil {
		t.Fatal(err)
	}
	defer e.stop()
	time.Sleep(settle)
	t0 := time.Now()
	child.Kill()
	t1, err := waitFor(started, t0, leaseDuration+time.Minute, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	s.Samples = append(s.Samples, t1.Sub(t0))
}
