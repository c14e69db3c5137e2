package leaderlease_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/operatortest"
	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/leadership"
)

func TestMain(m *testing.M) { operatortest.Main(m) }

const (
	endpointName = "kv"
	prefix       = "kvop-test"
	leaseName    = "lease"
	leaderLabel  = kvopv1.DefaultLeaderLabel
	// handoverDeadline is the API's 2 s plus slack for a loaded CI machine; the measured time
	// is logged.
	handoverDeadline = 5 * time.Second
	waitLong         = 30 * time.Second
)

var candidateLabels = map[string]string{"app": "worker"}

// env is one test's namespace, manager and backend.
type env struct {
	t   *testing.T
	ns  string
	tg  *backendtest.Target
	mgr *operatortest.Manager
}

func newEnv(t *testing.T, tg *backendtest.Target) *env {
	e := &env{t: t, ns: operatortest.Namespace(t), tg: tg}
	operatortest.CreateEndpoint(t, e.ns, endpointName, tg, prefix)
	e.startManager()
	return e
}

// startManager starts the namespace's manager and waits until the KVEndpoint controller has
// opened the endpoint's store in its pool.
func (e *env) startManager() {
	e.t.Helper()
	e.mgr = operatortest.StartManager(e.t, e.ns)
	nn := types.NamespacedName{Namespace: e.ns, Name: endpointName}
	operatortest.Eventually(e.t, waitLong, func() (bool, string) {
		return e.mgr.Pool.Get(nn) != nil, "the KVEndpoint controller did not open the store"
	})
}

// storeKey is the lease's default election key as stored (prefix included).
func (e *env) storeKey() string { return prefix + "/leases/" + e.ns + "/" + leaseName }

func (e *env) createPods(names ...string) map[string]*corev1.Pod {
	pods := map[string]*corev1.Pod{}
	for i, name := range names {
		pod := operatortest.CreatePod(e.t, e.ns, name, candidateLabels)
		operatortest.SetPodReady(e.t, pod, fmt.Sprintf("10.0.0.%d", i+1), true)
		pods[name] = pod
	}
	return pods
}

func (e *env) createLease(managed bool) {
	e.t.Helper()
	lease := &kvopv1.LeaderLease{
		ObjectMeta: metav1.ObjectMeta{Name: leaseName, Namespace: e.ns},
		Spec: kvopv1.LeaderLeaseSpec{
			EndpointRef: kvopv1.LocalObjectReference{Name: endpointName},
			TTL:         &metav1.Duration{Duration: 5 * time.Second},
		},
	}
	if managed {
		lease.Spec.Candidates = &kvopv1.Candidates{Selector: metav1.LabelSelector{MatchLabels: candidateLabels}}
	}
	if err := operatortest.Client.Create(context.Background(), lease); err != nil {
		e.t.Fatalf("creating LeaderLease: %v", err)
	}
}

func (e *env) lease() *kvopv1.LeaderLease {
	e.t.Helper()
	lease := &kvopv1.LeaderLease{}
	if err := operatortest.Client.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: leaseName}, lease); err != nil {
		e.t.Fatalf("getting LeaderLease: %v", err)
	}
	return lease
}

// labels returns the leader label of every candidate pod that still exists.
func (e *env) labels() map[string]string {
	e.t.Helper()
	var pods corev1.PodList
	if err := operatortest.Client.List(context.Background(), &pods, client.InNamespace(e.ns), client.MatchingLabels(candidateLabels)); err != nil {
		e.t.Fatalf("listing pods: %v", err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		out[p.Name] = p.Labels[leaderLabel]
	}
	return out
}

// electLeader creates three Ready candidate pods and a managed lease, and waits until one of
// them leads and is labelled.
func (e *env) electLeader() ([]string, *kvopv1.LeaderLease) {
	e.t.Helper()
	names := []string{"pod-a", "pod-b", "pod-c"}
	e.createPods(names...)
	e.createLease(true)
	return names, e.waitLeaderLabelled(waitLong, names, "")
}

// waitLeaderLabelled waits until status names a leader among pods, that pod alone is
// labelled "true" and every other pod in pods "false"; it returns the lease.
func (e *env) waitLeaderLabelled(timeout time.Duration, pods []string, not string) *kvopv1.LeaderLease {
	e.t.Helper()
	var lease *kvopv1.LeaderLease
	operatortest.Eventually(e.t, timeout, func() (bool, string) {
		lease = e.lease()
		leader := lease.Status.Leader
		if leader == "" || leader == not || !apimeta.IsStatusConditionTrue(lease.Status.Conditions, kvopv1.ConditionReady) {
			return false, fmt.Sprintf("status: leader %q (want one other than %q), conditions %v", leader, not, lease.Status.Conditions)
		}
		labels := e.labels()
		for _, pod := range pods {
			want := "false"
			if pod == leader {
				want = "true"
			}
			if labels[pod] != want {
				return false, fmt.Sprintf("leader %s; labels %v", leader, labels)
			}
		}
		return true, ""
	})
	return lease
}

// waitStatus polls the lease until cond holds and returns how long that took.
func (e *env) waitStatus(timeout time.Duration, cond func(*kvopv1.LeaderLease) (bool, string)) (*kvopv1.LeaderLease, time.Duration) {
	e.t.Helper()
	start := time.Now()
	for {
		lease := e.lease()
		ok, why := cond(lease)
		if ok {
			return lease, time.Since(start)
		}
		if time.Since(start) > timeout {
			e.t.Fatalf("after %s: %s", timeout, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkTerm asserts that status.term is the leader key's LastIndex and the key holds the leader.
func (e *env) checkTerm(store kvstore.Store, lease *kvopv1.LeaderLease) {
	e.t.Helper()
	pair, err := store.Get(context.Background(), e.storeKey())
	if err != nil {
		e.t.Fatalf("reading the leader key: %v", err)
	}
	if string(pair.Value) != lease.Status.Leader || lease.Status.Term <= 0 || uint64(lease.Status.Term) != pair.LastIndex {
		e.t.Fatalf("leader key holds %q at LastIndex %d; status says %q with term %d",
			pair.Value, pair.LastIndex, lease.Status.Leader, lease.Status.Term)
	}
	if lease.Status.Key != e.storeKey() {
		e.t.Fatalf("status.key = %q, want %q", lease.Status.Key, e.storeKey())
	}
}

func others(all []string, not ...string) []string {
	var out []string
	for _, a := range all {
		skip := false
		for _, n := range not {
			skip = skip || a == n
		}
		if !skip {
			out = append(out, a)
		}
	}
	return out
}

// Every backend: three Ready pods elect one leader; it is labelled and reported with its term;
// when it stops being Ready, and then when the next one is deleted, another pod takes over
// within the API's 2 s.
func TestManagedElection(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		e := newEnv(t, tg)
		names := []string{"pod-a", "pod-b", "pod-c"}
		pods := e.createPods(names...)
		e.createLease(true)
		reader := tg.Open(t)

		lease := e.waitLeaderLabelled(waitLong, names, "")
		first := lease.Status.Leader
		e.checkTerm(reader, lease)
		if lease.Status.LeaderSince == nil {
			t.Fatal("status.leaderSince is not set")
		}

		// The leader stops being Ready.
		start := time.Now()
		operatortest.SetPodReady(t, pods[first], "10.0.0.9", false)
		lease, _ = e.waitStatus(handoverDeadline, func(l *kvopv1.LeaderLease) (bool, string) {
			return l.Status.Leader != "" && l.Status.Leader != first, fmt.Sprintf("leader still %q", l.Status.Leader)
		})
		t.Logf("%s: leader %s not Ready -> %s leads in status after %s", tg.Backend, first, lease.Status.Leader, time.Since(start))
		lease = e.waitLeaderLabelled(handoverDeadline, names, first) // first: "false", as it is not Ready
		second := lease.Status.Leader
		if lease.Status.Transitions != 1 || lease.Status.LastLeader != second {
			t.Fatalf("after one handover: transitions %d, lastLeader %q", lease.Status.Transitions, lease.Status.LastLeader)
		}
		e.checkTerm(reader, lease)

		// The new leader is deleted: the last Ready pod takes over.
		third := others(names, first, second)[0]
		start = time.Now()
		if err := operatortest.Client.Delete(context.Background(), pods[second]); err != nil {
			t.Fatal(err)
		}
		lease, _ = e.waitStatus(handoverDeadline, func(l *kvopv1.LeaderLease) (bool, string) {
			return l.Status.Leader == third, fmt.Sprintf("leader %q, want %s", l.Status.Leader, third)
		})
		t.Logf("%s: leader %s deleted -> %s leads in status after %s", tg.Backend, second, third, time.Since(start))
		e.waitLeaderLabelled(handoverDeadline, []string{first, third}, second)
		if lease.Status.Transitions != 2 {
			t.Fatalf("after two handovers: transitions %d", lease.Status.Transitions)
		}
		e.checkTerm(reader, lease)

		if got := transitionsMetric(t, e.ns); got != 2 {
			t.Fatalf("kvop_leader_transitions_total = %v, want 2", got)
		}
		want := fmt.Sprintf("%s took over from %s (term %d)", third, second, lease.Status.Term)
		operatortest.Eventually(t, 10*time.Second, func() (bool, string) {
			var evs eventsv1.EventList
			if err := operatortest.Client.List(context.Background(), &evs, client.InNamespace(e.ns)); err != nil {
				return false, err.Error()
			}
			var notes []string
			for _, ev := range evs.Items {
				if ev.Reason == kvopv1.ReasonLeaderElected && ev.Note == want && ev.Regarding.Name == leaseName &&
					ev.Related != nil && ev.Related.Name == third {
					return true, ""
				}
				notes = append(notes, ev.Reason+": "+ev.Note)
			}
			return false, fmt.Sprintf("no LeaderElected event %q among %q", want, notes)
		})
	})
}

// Observe mode: kvop follows the key where outside processes campaign.
func TestObserveMode(t *testing.T) {
	tg := backendtest.Get(t, kvstore.Etcd)
	e := newEnv(t, tg)
	e.createLease(false)
	e.waitStatus(waitLong, func(l *kvopv1.LeaderLease) (bool, string) {
		c := apimeta.FindStatusCondition(l.Status.Conditions, kvopv1.ConditionReady)
		return c != nil && c.Reason == kvopv1.ReasonNoLeader && l.Status.Leader == "" && l.Status.Key == e.storeKey(),
			fmt.Sprintf("status %+v", l.Status)
	})

	campaign := func(node string) (*leadership.Candidate, context.CancelFunc, <-chan bool) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		c := leadership.NewCandidate(tg.Open(t), e.storeKey(), node, 5*time.Second)
		elected, _ := c.RunForElection(ctx)
		for !<-elected {
		}
		return c, cancel, elected
	}
	leads := func(c *leadership.Candidate) func(*kvopv1.LeaderLease) (bool, string) {
		return func(l *kvopv1.LeaderLease) (bool, string) {
			return l.Status.Leader == c.Node() && l.Status.Term == int64(c.Term()) &&
					apimeta.IsStatusConditionTrue(l.Status.Conditions, kvopv1.ConditionReady),
				fmt.Sprintf("status %+v; want %s with term %d", l.Status, c.Node(), c.Term())
		}
	}

	ext1, cancel1, elected1 := campaign("external-1")
	lease, took := e.waitStatus(5*time.Second, leads(ext1))
	t.Logf("status named external-1 %s after it was elected", took)
	if lease.Status.Transitions != 0 {
		t.Fatalf("the first leader is no transition; transitions = %d", lease.Status.Transitions)
	}

	cancel1()
	for range elected1 {
	}
	e.waitStatus(5*time.Second, func(l *kvopv1.LeaderLease) (bool, string) {
		c := apimeta.FindStatusCondition(l.Status.Conditions, kvopv1.ConditionReady)
		return l.Status.Leader == "" && l.Status.Term == 0 && c != nil && c.Reason == kvopv1.ReasonNoLeader,
			fmt.Sprintf("status %+v after external-1 resigned", l.Status)
	})

	ext2, _, _ := campaign("external-2")
	lease, _ = e.waitStatus(5*time.Second, leads(ext2))
	if lease.Status.Transitions != 1 || lease.Status.LastLeader != "external-2" {
		t.Fatalf("external-1 -> (nobody) -> external-2: transitions %d, lastLeader %q", lease.Status.Transitions, lease.Status.LastLeader)
	}
	if len(e.labels()) != 0 {
		t.Fatal("observe mode created or labelled pods")
	}
}

// A restart of kvop does not move leadership away from a leader pod that is still Ready, and
// its label stays "true" throughout.
func TestManagerRestartKeepsLeader(t *testing.T) {
	tg := backendtest.Get(t, kvstore.Etcd)
	e := newEnv(t, tg)
	names, lease := e.electLeader()
	leader, term, transitions := lease.Status.Leader, lease.Status.Term, lease.Status.Transitions

	// Watch the leader's label through the restart.
	var mu sync.Mutex
	var lost []string
	stopPolling := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stopPolling:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var pod corev1.Pod
			err := operatortest.Client.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: leader}, &pod)
			if err != nil || pod.Labels[leaderLabel] != "true" {
				mu.Lock()
				lost = append(lost, fmt.Sprintf("%s: label %q (%v)", time.Now().Format("15:04:05.000"), pod.Labels[leaderLabel], err))
				mu.Unlock()
			}
		}
	}()

	e.mgr.Stop()
	e.startManager()
	reader := tg.Open(t)
	// The new manager's election: the leader key holds a new term of the same pod (the old
	// campaigns released it at shutdown, or their lock expired), and status says so.
	lease, took := e.waitStatus(waitLong, func(l *kvopv1.LeaderLease) (bool, string) {
		pair, err := reader.Get(context.Background(), e.storeKey())
		if err != nil {
			return false, fmt.Sprintf("leader key: %v", err)
		}
		return l.Status.Term > term && uint64(l.Status.Term) == pair.LastIndex && l.Status.Leader == string(pair.Value),
			fmt.Sprintf("status %s term %d, key %s at %d; before the restart term %d", l.Status.Leader, l.Status.Term, pair.Value, pair.LastIndex, term)
	})
	t.Logf("after the restart %s leads with term %d (was %d), %s after the new manager started", lease.Status.Leader, lease.Status.Term, term, took)
	// Past the restart hold, the other candidates campaign too: the leader must stay.
	time.Sleep(time.Second)
	lease = e.waitLeaderLabelled(5*time.Second, names, "")
	close(stopPolling)
	<-polled
	if lease.Status.Leader != leader {
		t.Fatalf("leadership moved from %s to %s across a restart of kvop", leader, lease.Status.Leader)
	}
	if lease.Status.Transitions != transitions {
		t.Fatalf("transitions went from %d to %d across a restart", transitions, lease.Status.Transitions)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lost) > 0 {
		t.Fatalf("the leader's label was not \"true\" during the restart: %v", lost)
	}
}

// Deleting a LeaderLease stops its campaigns (the key is released, not left to expire),
// removes the leader label from its pods, and the object goes.
func TestDeleteReleasesKey(t *testing.T) {
	tg := backendtest.Get(t, kvstore.Etcd)
	e := newEnv(t, tg)
	names := []string{"pod-a", "pod-b"}
	e.createPods(names...)
	e.createLease(true)
	e.waitLeaderLabelled(waitLong, names, "")
	reader := tg.Open(t)

	start := time.Now()
	if err := operatortest.Client.Delete(context.Background(), e.lease()); err != nil {
		t.Fatal(err)
	}
	operatortest.Eventually(t, 5*time.Second, func() (bool, string) {
		_, err := reader.Get(context.Background(), e.storeKey())
		return errors.Is(err, kvstore.ErrKeyNotFound), fmt.Sprintf("leader key: %v", err)
	})
	t.Logf("leader key released %s after the delete", time.Since(start))
	operatortest.Eventually(t, 10*time.Second, func() (bool, string) {
		err := operatortest.Client.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: leaseName}, &kvopv1.LeaderLease{})
		return apierrors.IsNotFound(err), fmt.Sprintf("LeaderLease still there (%v)", err)
	})
	var pods corev1.PodList
	if err := operatortest.Client.List(context.Background(), &pods, client.InNamespace(e.ns)); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if v, ok := p.Labels[leaderLabel]; ok {
			t.Errorf("pod %s still has %s=%s", p.Name, leaderLabel, v)
		}
	}
}

// A lease whose KVEndpoint does not exist says so, and gets its finalizer.
func TestEndpointNotFound(t *testing.T) {
	ns := operatortest.Namespace(t)
	operatortest.StartManager(t, ns)
	lease := &kvopv1.LeaderLease{
		ObjectMeta: metav1.ObjectMeta{Name: leaseName, Namespace: ns},
		Spec:       kvopv1.LeaderLeaseSpec{EndpointRef: kvopv1.LocalObjectReference{Name: "missing"}},
	}
	if err := operatortest.Client.Create(context.Background(), lease); err != nil {
		t.Fatal(err)
	}
	operatortest.Eventually(t, waitLong, func() (bool, string) {
		if err := operatortest.Client.Get(context.Background(), client.ObjectKeyFromObject(lease), lease); err != nil {
			return false, err.Error()
		}
		c := apimeta.FindStatusCondition(lease.Status.Conditions, kvopv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == kvopv1.ReasonEndpointNotFound &&
				lease.Status.ObservedGeneration == lease.Generation && len(lease.Finalizers) == 1,
			fmt.Sprintf("status %+v, finalizers %v", lease.Status, lease.Finalizers)
	})
}

// Replacing the endpoint's store (its spec changed) restarts the election on the new store;
// the restart rule keeps the same leader.
func TestStoreReplacedKeepsLeader(t *testing.T) {
	tg := backendtest.Get(t, kvstore.Etcd)
	e := newEnv(t, tg)
	names, lease := e.electLeader()
	leader, term := lease.Status.Leader, lease.Status.Term
	nn := types.NamespacedName{Namespace: e.ns, Name: endpointName}
	generation := e.mgr.Pool.Get(nn).Generation

	var ep kvopv1.KVEndpoint
	if err := operatortest.Client.Get(context.Background(), nn, &ep); err != nil {
		t.Fatal(err)
	}
	ep.Spec.ConnectionTimeout = &metav1.Duration{Duration: 7 * time.Second}
	if err := operatortest.Client.Update(context.Background(), &ep); err != nil {
		t.Fatal(err)
	}
	operatortest.Eventually(t, waitLong, func() (bool, string) {
		s := e.mgr.Pool.Get(nn)
		return s != nil && s.Generation > generation, "the store was not replaced"
	})
	reader := tg.Open(t)
	lease, took := e.waitStatus(waitLong, func(l *kvopv1.LeaderLease) (bool, string) {
		pair, err := reader.Get(context.Background(), e.storeKey())
		if err != nil {
			return false, fmt.Sprintf("leader key: %v", err)
		}
		return l.Status.Term > term && uint64(l.Status.Term) == pair.LastIndex,
			fmt.Sprintf("status %s term %d, key %s at %d; before %d", l.Status.Leader, l.Status.Term, pair.Value, pair.LastIndex, term)
	})
	t.Logf("new store: %s leads with term %d (was %d) %s after the replacement", lease.Status.Leader, lease.Status.Term, term, took)
	if lease.Status.Leader != leader || lease.Status.Transitions != 0 {
		t.Fatalf("after the store was replaced: leader %s (was %s), transitions %d", lease.Status.Leader, leader, lease.Status.Transitions)
	}
	e.waitLeaderLabelled(5*time.Second, names, "")
}

// transitionsMetric reads kvop_leader_transitions_total for the test's lease.
func transitionsMetric(t *testing.T, ns string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "kvop_leader_transitions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == ns && labels["lease"] == leaseName {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// The leader label follows the spec: a new spec.leaderLabel moves the label to the new key and
// takes the old one off; a pod that leaves the selector loses the label; observe mode takes
// every label kvop set off again; deleting the lease takes off what is left.
func TestLabelsFollowSpec(t *testing.T) {
	tg := backendtest.Get(t, kvstore.Etcd)
	e := newEnv(t, tg)
	names, lease := e.electLeader()
	if lease.Status.LeaderLabel != leaderLabel || !slices.Equal(lease.Status.LabelledPods, names) {
		t.Fatalf("status: leaderLabel %q, labelledPods %v; want %q on %v", lease.Status.LeaderLabel, lease.Status.LabelledPods, leaderLabel, names)
	}
	ctx := context.Background()
	update := func(change func(*kvopv1.LeaderLease)) {
		t.Helper()
		l := e.lease()
		change(l)
		if err := operatortest.Client.Update(ctx, l); err != nil {
			t.Fatalf("updating the LeaderLease: %v", err)
		}
	}
	podLabels := func() map[string]map[string]string {
		var pods corev1.PodList
		if err := operatortest.Client.List(ctx, &pods, client.InNamespace(e.ns)); err != nil {
			t.Fatal(err)
		}
		out := map[string]map[string]string{}
		for _, p := range pods.Items {
			out[p.Name] = p.Labels
		}
		return out
	}
	// leaderOnly checks that the leader pods carry key as leader/other and no pod carries gone.
	leaderOnly := func(key, gone string, pods []string) func() (bool, string) {
		return func() (bool, string) {
			l, all := e.lease(), podLabels()
			for name, labels := range all {
				if _, ok := labels[gone]; ok && gone != "" {
					return false, fmt.Sprintf("pod %s still carries %s: %v", name, gone, all)
				}
			}
			for _, name := range pods {
				want := "false"
				if name == l.Status.Leader {
					want = "true"
				}
				if all[name][key] != want {
					return false, fmt.Sprintf("leader %q; want %s=%s on %s: %v", l.Status.Leader, key, want, name, all)
				}
			}
			if l.Status.LeaderLabel != key || !slices.Equal(l.Status.LabelledPods, pods) {
				return false, fmt.Sprintf("status: leaderLabel %q, labelledPods %v", l.Status.LeaderLabel, l.Status.LabelledPods)
			}
			return true, ""
		}
	}

	const newKey = "example.com/primary"
	update(func(l *kvopv1.LeaderLease) { l.Spec.LeaderLabel = newKey })
	operatortest.Eventually(t, waitLong, leaderOnly(newKey, leaderLabel, names))

	// The leader leaves the selector: it loses the label and another pod leads.
	leader := e.lease().Status.Leader
	var pod corev1.Pod
	if err := operatortest.Client.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: leader}, &pod); err != nil {
		t.Fatal(err)
	}
	pod.Labels["app"] = "retired"
	if err := operatortest.Client.Update(ctx, &pod); err != nil {
		t.Fatal(err)
	}
	rest := others(names, leader)
	operatortest.Eventually(t, waitLong, func() (bool, string) {
		if _, ok := podLabels()[leader][newKey]; ok {
			return false, fmt.Sprintf("%s left the selector but still carries %s", leader, newKey)
		}
		return leaderOnly(newKey, "", rest)()
	})

	// Observe mode labels nothing.
	update(func(l *kvopv1.LeaderLease) { l.Spec.Candidates = nil })
	operatortest.Eventually(t, waitLong, func() (bool, string) {
		l, all := e.lease(), podLabels()
		for name, labels := range all {
			if _, ok := labels[newKey]; ok {
				return false, fmt.Sprintf("observe mode: pod %s still carries %s", name, newKey)
			}
		}
		return l.Status.LeaderLabel == "" && len(l.Status.LabelledPods) == 0, fmt.Sprintf("status: %q %v", l.Status.LeaderLabel, l.Status.LabelledPods)
	})

	// Back to managed mode, then the lease is deleted: every label kvop set goes.
	update(func(l *kvopv1.LeaderLease) {
		l.Spec.Candidates = &kvopv1.Candidates{Selector: metav1.LabelSelector{MatchLabels: candidateLabels}}
	})
	operatortest.Eventually(t, waitLong, leaderOnly(newKey, "", rest))
	// The retired pod rejoins: labelled again.
	if err := operatortest.Client.Get(ctx, client.ObjectKeyFromObject(&pod), &pod); err != nil {
		t.Fatal(err)
	}
	pod.Labels["app"] = "worker"
	if err := operatortest.Client.Update(ctx, &pod); err != nil {
		t.Fatal(err)
	}
	operatortest.Eventually(t, waitLong, leaderOnly(newKey, "", names))
	if err := operatortest.Client.Delete(ctx, e.lease()); err != nil {
		t.Fatal(err)
	}
	operatortest.Eventually(t, waitLong, func() (bool, string) {
		for name, labels := range podLabels() {
			if _, ok := labels[newKey]; ok {
				return false, fmt.Sprintf("lease deleted: pod %s still carries %s", name, newKey)
			}
		}
		return true, ""
	})
}
