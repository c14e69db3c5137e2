package operatorfaults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/operatortest"
	"github.com/kvop/kvop/pkg/discovery"
	"github.com/kvop/kvop/pkg/kvstore"
)

// The workload every fault test runs: one KVEndpoint, a Registration of three Ready pods and a
// managed LeaderLease whose candidates are the same pods.
const (
	endpointName = "kv"
	regName      = "web"
	leaseName    = "web-leader"
	service      = "web"
	port         = 8080
	leaderLabel  = "kvop.io/leader"
	// entryTTL is short so that "re-asserted within TTL + 5 s" is a tight bound.
	entryTTL = 10 * time.Second
	leaseTTL = 5 * time.Second
	// settle bounds what must happen without a fault (under -race on two shared cores).
	settle = 60 * time.Second
)

// pods are the workload's pods and their IPs.
var pods = map[string]string{"web-0": "10.11.0.1", "web-1": "10.11.0.2", "web-2": "10.11.0.3"}

// fixture is one test's namespace, backend, manager and a client of its own on the backend.
type fixture struct {
	t      *testing.T
	tg     *backendtest.Target
	ns     string
	prefix string
	mgr    *operatortest.Manager
	reader *reader
}

func newFixture(t *testing.T, tg *backendtest.Target) *fixture {
	t.Helper()
	ns := operatortest.Namespace(t)
	return &fixture{t: t, tg: tg, ns: ns, prefix: "faults/" + ns, reader: newReader(t, tg)}
}

func (f *fixture) key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: f.ns, Name: name}
}

// createWorkload creates the endpoint, the pods (Ready), the Registration and the lease.
func (f *fixture) createWorkload() {
	f.t.Helper()
	ctx := context.Background()
	operatortest.CreateEndpoint(f.t, f.ns, endpointName, f.tg, f.prefix)
	labels := map[string]string{"app": "web"}
	for _, name := range slices.Sorted(maps.Keys(pods)) {
		pod := operatortest.CreatePod(f.t, f.ns, name, labels)
		operatortest.SetPodReady(f.t, pod, pods[name], true)
	}
	reg := &kvopv1.Registration{
		ObjectMeta: metav1.ObjectMeta{Name: regName, Namespace: f.ns},
		Spec: kvopv1.RegistrationSpec{
			EndpointRef: kvopv1.LocalObjectReference{Name: endpointName},
			Service:     service,
			Selector:    metav1.LabelSelector{MatchLabels: labels},
			Port:        intstr.FromInt32(port),
			TTL:         &metav1.Duration{Duration: entryTTL},
		},
	}
	if err := operatortest.Client.Create(ctx, reg); err != nil {
		f.t.Fatalf("creating Registration: %v", err)
	}
	lease := &kvopv1.LeaderLease{
		ObjectMeta: metav1.ObjectMeta{Name: leaseName, Namespace: f.ns},
		Spec: kvopv1.LeaderLeaseSpec{
			EndpointRef: kvopv1.LocalObjectReference{Name: endpointName},
			TTL:         &metav1.Duration{Duration: leaseTTL},
			Candidates:  &kvopv1.Candidates{Selector: metav1.LabelSelector{MatchLabels: labels}},
		},
	}
	if err := operatortest.Client.Create(ctx, lease); err != nil {
		f.t.Fatalf("creating LeaderLease: %v", err)
	}
}

// wantedEndpoints are the entries the Registration must keep, as address:port.
func wantedEndpoints() []string {
	var out []string
	for _, ip := range pods {
		out = append(out, fmt.Sprintf("%s:%d", ip, port))
	}
	slices.Sort(out)
	return out
}

// endpointReady returns the KVEndpoint's Ready status and reason.
func (f *fixture) endpointReady() (metav1.ConditionStatus, string) {
	e := &kvopv1.KVEndpoint{}
	if err := operatortest.Client.Get(context.Background(), f.key(endpointName), e); err != nil {
		return metav1.ConditionUnknown, err.Error()
	}
	c := apimeta.FindStatusCondition(e.Status.Conditions, kvopv1.ConditionReady)
	if c == nil {
		return metav1.ConditionUnknown, "no Ready condition"
	}
	return c.Status, c.Reason
}

// waitEndpoint waits until the KVEndpoint's Ready is want and returns how long that took.
func (f *fixture) waitEndpoint(want metav1.ConditionStatus, within time.Duration) time.Duration {
	f.t.Helper()
	start := time.Now()
	operatortest.Eventually(f.t, within, func() (bool, string) {
		got, reason := f.endpointReady()
		return got == want, fmt.Sprintf("KVEndpoint Ready=%s (%s), want %s", got, reason, want)
	})
	return time.Since(start)
}

// entriesOK reports whether the store holds exactly the wanted entries, each naming its pod.
func (f *fixture) entriesOK() (bool, string) {
	entries, err := f.reader.entries(f.prefix)
	if err != nil {
		return false, fmt.Sprintf("reading the entries: %v", err)
	}
	var got []string
	for _, e := range entries {
		if pods[e.Pod] != e.Address || e.Namespace != f.ns || !strings.HasPrefix(e.Owner, operatortest.ClusterID+"/") {
			return false, fmt.Sprintf("entry %+v does not describe its pod", e)
		}
		got = append(got, e.Endpoint())
	}
	slices.Sort(got)
	want := wantedEndpoints()
	return slices.Equal(got, want), fmt.Sprintf("service %s holds %v, want %v", service, got, want)
}

// waitEntries waits until the store holds exactly the wanted entries; it returns how long that
// took.
func (f *fixture) waitEntries(within time.Duration) time.Duration {
	f.t.Helper()
	start := time.Now()
	operatortest.Eventually(f.t, within, f.entriesOK)
	return time.Since(start)
}

// leaderOK reports the lease's leader when it is Ready with a leader among the pods and the
// labels agree: "true" on the leader, "false" on the other candidates.
func (f *fixture) leaderOK() (string, bool, string) {
	ctx := context.Background()
	lease := &kvopv1.LeaderLease{}
	if err := operatortest.Client.Get(ctx, f.key(leaseName), lease); err != nil {
		return "", false, err.Error()
	}
	leader := lease.Status.Leader
	c := apimeta.FindStatusCondition(lease.Status.Conditions, kvopv1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue || leader == "" {
		return "", false, fmt.Sprintf("LeaderLease: leader %q, Ready %+v", leader, c)
	}
	if _, ok := pods[leader]; !ok {
		return "", false, fmt.Sprintf("LeaderLease names %q, not a candidate", leader)
	}
	// The store must agree: the lease status is what the manager's follower last saw.
	holder, err := f.reader.value(f.prefix + "/leases/" + f.ns + "/" + leaseName)
	if err != nil || holder != leader {
		return "", false, fmt.Sprintf("LeaderLease names %s, the election key holds %q (%v)", leader, holder, err)
	}
	labels, err := f.leaderLabels()
	if err != nil {
		return "", false, err.Error()
	}
	for name := range pods {
		want := "false"
		if name == leader {
			want = "true"
		}
		if labels[name] != want {
			return "", false, fmt.Sprintf("leader %s, but the labels are %v", leader, labels)
		}
	}
	return leader, true, ""
}

// leaderLabels returns each pod's leader label ("" when absent).
func (f *fixture) leaderLabels() (map[string]string, error) {
	var list corev1.PodList
	if err := operatortest.Client.List(context.Background(), &list, client.InNamespace(f.ns)); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range list.Items {
		out[p.Name] = p.Labels[leaderLabel]
	}
	return out, nil
}

// waitLeader waits until leaderOK holds and returns the leader and how long that took.
func (f *fixture) waitLeader(within time.Duration) (string, time.Duration) {
	f.t.Helper()
	start := time.Now()
	var leader string
	operatortest.Eventually(f.t, within, func() (bool, string) {
		l, ok, why := f.leaderOK()
		leader = l
		return ok, why
	})
	return leader, time.Since(start)
}

// alive fails the test when the manager's Start returned although nobody stopped it.
func (f *fixture) alive(when string) {
	f.t.Helper()
	if exited, err := f.mgr.Exited(); exited {
		f.t.Fatalf("%s: the manager stopped by itself: %v", when, err)
	}
}

// reader is the test's own client of the backend, reopened after an error (a server that was
// killed, a ZooKeeper session that expired) so that it always says what the backend holds now.
type reader struct {
	t  *testing.T
	tg *backendtest.Target

	mu    sync.Mutex
	store kvstore.Store
}

func newReader(t *testing.T, tg *backendtest.Target) *reader {
	r := &reader{t: t, tg: tg}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.store != nil {
			_ = r.store.Close()
		}
	})
	return r
}

// entries lists the service's entries of any owner.
func (r *reader) entries(prefix string) ([]discovery.Entry, error) {
	var out []discovery.Entry
	err := r.do(func(ctx context.Context, s kvstore.Store) error {
		var err error
		out, err = discovery.NewRegistry(s, prefix).Entries(ctx, service)
		return err
	})
	return out, err
}

// value returns the value at key ("" when absent).
func (r *reader) value(key string) (string, error) {
	var out string
	err := r.do(func(ctx context.Context, s kvstore.Store) error {
		p, err := s.Get(ctx, key)
		switch {
		case errors.Is(err, kvstore.ErrKeyNotFound):
			return nil
		case err != nil:
			return err
		}
		out = string(p.Value)
		return nil
	})
	return out, err
}

// do runs fn on an open store; an error closes it, so that the next call opens a new one.
func (r *reader) do(fn func(context.Context, kvstore.Store) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r.store == nil {
		s, err := kvstore.New(ctx, r.tg.Backend, r.tg.Addrs, r.tg.Config)
		if err != nil {
			return err
		}
		r.store = s
	}
	err := fn(ctx, r.store)
	if err != nil {
		_ = r.store.Close()
		r.store = nil
	}
	return err
}

// figure logs one measured figure in a form docs/reliability.md quotes.
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("figure: "+format, args...)
}

func intstrFrom(port int32) intstr.IntOrString { return intstr.FromInt32(port) }
