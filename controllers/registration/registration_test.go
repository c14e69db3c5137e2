package registration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers/registration"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/operatortest"
	"github.com/kvop/kvop/pkg/discovery"
	"github.com/kvop/kvop/pkg/kvstore"
)

func TestMain(m *testing.M) { operatortest.Main(m) }

const (
	endpointName = "kv"
	// longTTL: entries outlive every test, so a vanished entry was deleted, not expired.
	longTTL = 60 * time.Second
	timeout = 30 * time.Second
	// promptly bounds explicit deregistration: far below longTTL.
	promptly = 10 * time.Second
)

// fixture is one test's namespace, manager, key prefix and a client of its backend.
type fixture struct {
	t        *testing.T
	tg       *backendtest.Target
	ns       string
	prefix   string
	mgr      *operatortest.Manager
	reader   kvstore.Store
	registry *discovery.Registry
}

func newFixture(t *testing.T, tg *backendtest.Target, withEndpoint bool) *fixture {
	t.Helper()
	ns := operatortest.Namespace(t)
	f := &fixture{t: t, tg: tg, ns: ns, prefix: "regtest/" + ns}
	f.reader = tg.Open(t)
	f.registry = discovery.NewRegistry(f.reader, f.prefix)
	f.mgr = operatortest.StartManager(t, ns)
	if withEndpoint {
		f.createEndpoint()
	}
	return f
}

// createEndpoint creates the KVEndpoint; the KVEndpoint controller opens its store in the pool.
func (f *fixture) createEndpoint() {
	f.t.Helper()
	operatortest.CreateEndpoint(f.t, f.ns, endpointName, f.tg, f.prefix)
}

// createRegistration creates a Registration of the pods labelled app=<app>.
func (f *fixture) createRegistration(name, app string, port intstr.IntOrString, mutate ...func(*kvopv1.Registration)) *kvopv1.Registration {
	f.t.Helper()
	reg := &kvopv1.Registration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec: kvopv1.RegistrationSpec{
			EndpointRef: kvopv1.LocalObjectReference{Name: endpointName},
			Selector:    metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Port:        port,
			TTL:         &metav1.Duration{Duration: longTTL},
			Metadata:    map[string]string{"zone": "a", "version": "1"},
		},
	}
	for _, m := range mutate {
		m(reg)
	}
	if err := operatortest.Client.Create(context.Background(), reg); err != nil {
		f.t.Fatalf("creating Registration: %v", err)
	}
	return reg
}

// readyPod creates a pod labelled app=<app> and makes it Ready with ip.
func (f *fixture) readyPod(name, app, ip string, ports ...corev1.ContainerPort) *corev1.Pod {
	f.t.Helper()
	pod := operatortest.CreatePod(f.t, f.ns, name, map[string]string{"app": app}, ports...)
	operatortest.SetPodReady(f.t, pod, ip, true)
	return pod
}

// endpoints lists the endpoints (address:port) registered for service, of any owner.
func (f *fixture) endpoints(service string) ([]string, error) {
	entries, err := f.registry.Entries(context.Background(), service)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Endpoint())
	}
	slices.Sort(out)
	return out, nil
}

// waitEndpoints waits until service holds exactly want (any order) and returns how long it took.
func (f *fixture) waitEndpoints(service string, within time.Duration, want ...string) time.Duration {
	f.t.Helper()
	start := time.Now()
	want = slices.Sorted(slices.Values(want))
	operatortest.Eventually(f.t, within, func() (bool, string) {
		got, err := f.endpoints(service)
		if err != nil {
			return false, fmt.Sprintf("reading service %s: %v", service, err)
		}
		return slices.Equal(got, want), fmt.Sprintf("service %s holds %v, want %v", service, got, want)
	})
	return time.Since(start)
}

// waitReady waits until the Registration reports Ready=ready with reason and endpoints entries.
func (f *fixture) waitReady(name string, ready bool, reason string, endpoints int32) *kvopv1.Registration {
	f.t.Helper()
	reg := &kvopv1.Registration{}
	operatortest.Eventually(f.t, timeout, func() (bool, string) {
		if err := operatortest.Client.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: name}, reg); err != nil {
			return false, err.Error()
		}
		c := apimeta.FindStatusCondition(reg.Status.Conditions, kvopv1.ConditionReady)
		if c == nil {
			return false, "no Ready condition"
		}
		want := metav1.ConditionFalse
		if ready {
			want = metav1.ConditionTrue
		}
		ok := c.Status == want && c.Reason == reason && reg.Status.Endpoints == endpoints &&
			reg.Status.ObservedGeneration == reg.Generation
		return ok, fmt.Sprintf("Ready=%s %s (%s), endpoints %d, observedGeneration %d/%d; want Ready=%s %s, endpoints %d",
			c.Status, c.Reason, c.Message, reg.Status.Endpoints, reg.Status.ObservedGeneration, reg.Generation, want, reason, endpoints)
	})
	return reg
}

// entryKey is where an entry for ip:port of service lives.
func (f *fixture) entryKey(service, ip string, port int) string {
	return discovery.Key(f.prefix, discovery.Entry{Service: service, Address: ip, Port: port})
}

// rawEntry reads the stored JSON of an entry as a generic map, so that field names count.
func (f *fixture) rawEntry(service, ip string, port int) map[string]any {
	f.t.Helper()
	pair, err := f.reader.Get(context.Background(), f.entryKey(service, ip, port))
	if err != nil {
		f.t.Fatalf("reading entry %s:%d: %v", ip, port, err)
	}
	var m map[string]any
	if err := json.Unmarshal(pair.Value, &m); err != nil {
		f.t.Fatalf("entry %s:%d is not JSON: %v (%q)", ip, port, err, pair.Value)
	}
	return m
}

// gauge returns kvop_registered_entries of a Registration, and whether the series exists.
func gauge(t *testing.T, ns, name string) (float64, bool) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range families {
		if mf.GetName() != "kvop_registered_entries" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == ns && labels["registration"] == name {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// waitEvent waits for an event about the Registration with reason whose note holds text.
func (f *fixture) waitEvent(name, reason, text string) {
	f.t.Helper()
	operatortest.Eventually(f.t, timeout, func() (bool, string) {
		list := &eventsv1.EventList{}
		if err := operatortest.Client.List(context.Background(), list, client.InNamespace(f.ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Regarding.Kind == "Registration" {
				if e.Reason == reason && strings.Contains(e.Note, text) {
					return true, ""
				}
				seen = append(seen, e.Reason+": "+e.Note)
			}
		}
		return false, fmt.Sprintf("no %s event with %q about %s; seen %q", reason, text, name, seen)
	})
}

func updateRegistration(t *testing.T, reg *kvopv1.Registration, mutate func(*kvopv1.Registration)) {
	t.Helper()
	ctx := context.Background()
	operatortest.Eventually(t, timeout, func() (bool, string) {
		if err := operatortest.Client.Get(ctx, client.ObjectKeyFromObject(reg), reg); err != nil {
			return false, err.Error()
		}
		mutate(reg)
		err := operatortest.Client.Update(ctx, reg)
		return err == nil, fmt.Sprintf("updating Registration: %v", err)
	})
}

func TestRegistersReadyPods(t *testing.T) {
	t.Parallel()
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		f := newFixture(t, tg, true)
		f.createRegistration("web", "web", intstr.FromInt32(8080))
		// Not registered: not Ready, no IP, or not selected.
		operatortest.CreatePod(t, f.ns, "pending", map[string]string{"app": "web"})
		f.readyPod("other", "db", "10.0.9.1")

		start := time.Now()
		pods := map[string]string{"web-0": "10.0.0.10", "web-1": "10.0.0.11", "web-2": "10.0.0.12"}
		for name, ip := range pods {
			f.readyPod(name, "web", ip)
		}
		f.waitEndpoints("web", timeout, "10.0.0.10:8080", "10.0.0.11:8080", "10.0.0.12:8080")
		t.Logf("%s: 3 pods Ready -> 3 entries visible in %s", tg.Backend, time.Since(start).Round(time.Millisecond))

		reg := f.waitReady("web", true, kvopv1.ReasonRegistered, 3)
		if reg.Status.Service != "web" {
			t.Errorf("status.service = %q, want web", reg.Status.Service)
		}
		if !slices.Contains(reg.Finalizers, kvopv1.Finalizer) {
			t.Errorf("finalizers = %v, want %s", reg.Finalizers, kvopv1.Finalizer)
		}
		for name, ip := range pods {
			got := f.rawEntry("web", ip, 8080)
			want := map[string]any{
				"service": "web", "address": ip, "port": float64(8080), "pod": name, "namespace": f.ns,
				"node": "node-1", "metadata": map[string]any{"zone": "a", "version": "1"},
				"owner": operatortest.ClusterID + "/" + string(reg.UID),
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("entry of %s:\n got %v\nwant %v", name, got, want)
			}
		}
		operatortest.Eventually(t, timeout, func() (bool, string) {
			v, ok := gauge(t, f.ns, "web")
			return ok && v == 3, fmt.Sprintf("kvop_registered_entries = %v (present %v), want 3", v, ok)
		})

		// One more pod becoming Ready: the time from Ready to a visible entry.
		start = time.Now()
		f.readyPod("web-3", "web", "10.0.0.13")
		f.waitEndpoints("web", timeout, "10.0.0.10:8080", "10.0.0.11:8080", "10.0.0.12:8080", "10.0.0.13:8080")
		t.Logf("%s: pod Ready -> entry visible in %s", tg.Backend, time.Since(start).Round(time.Millisecond))
		f.waitEvent("web", "Registered", "1 added, 0 updated, 0 removed; 4 entries registered")
	})
}

func TestDeregistersAtOnce(t *testing.T) {
	t.Parallel()
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		f := newFixture(t, tg, true)
		f.createRegistration("api", "api", intstr.FromInt32(9000))
		unready := f.readyPod("api-0", "api", "10.0.1.10")
		terminating := f.readyPod("api-1", "api", "10.0.1.11")
		removed := f.readyPod("api-2", "api", "10.0.1.12")
		f.readyPod("api-3", "api", "10.0.1.13")
		f.waitEndpoints("api", timeout, "10.0.1.10:9000", "10.0.1.11:9000", "10.0.1.12:9000", "10.0.1.13:9000")

		// Not Ready any more: deleted explicitly (the TTL is 60s).
		operatortest.SetPodReady(t, unready, "10.0.1.10", false)
		d := f.waitEndpoints("api", promptly, "10.0.1.11:9000", "10.0.1.12:9000", "10.0.1.13:9000")
		t.Logf("%s: pod not Ready -> entry gone in %s", tg.Backend, d.Round(time.Millisecond))

		// Terminating: the pod is on a node, so the API server keeps it (with a deletion
		// timestamp) for the kubelet that never comes.
		if err := operatortest.Client.Delete(context.Background(), terminating); err != nil {
			t.Fatal(err)
		}
		d = f.waitEndpoints("api", promptly, "10.0.1.12:9000", "10.0.1.13:9000")
		t.Logf("%s: pod terminating -> entry gone in %s", tg.Backend, d.Round(time.Millisecond))

		// Deleted outright.
		if err := operatortest.Client.Delete(context.Background(), removed, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		d = f.waitEndpoints("api", promptly, "10.0.1.13:9000")
		t.Logf("%s: pod deleted -> entry gone in %s", tg.Backend, d.Round(time.Millisecond))
		f.waitEvent("api", "Deregistered", "0 added, 0 updated, 1 removed")
		f.waitReady("api", true, kvopv1.ReasonRegistered, 1)

		// Ready again: back.
		operatortest.SetPodReady(t, unready, "10.0.1.10", true)
		f.waitEndpoints("api", promptly, "10.0.1.10:9000", "10.0.1.13:9000")
	})
}

func TestSelectorChange(t *testing.T) {
	t.Parallel()
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		f := newFixture(t, tg, true)
		reg := f.createRegistration("svc", "blue", intstr.FromInt32(80))
		f.readyPod("blue-0", "blue", "10.0.2.10")
		f.readyPod("blue-1", "blue", "10.0.2.11")
		green := f.readyPod("green-0", "green", "10.0.2.20")
		f.waitEndpoints("svc", timeout, "10.0.2.10:80", "10.0.2.11:80")

		updateRegistration(t, reg, func(r *kvopv1.Registration) { r.Spec.Selector.MatchLabels = map[string]string{"app": "green"} })
		f.waitEndpoints("svc", promptly, "10.0.2.20:80")
		f.waitReady("svc", true, kvopv1.ReasonRegistered, 1)

		// A pod relabelled out of the selection is deregistered too (mapped by its old labels).
		green.Labels = map[string]string{"app": "blue"}
		if err := operatortest.Client.Update(context.Background(), green); err != nil {
			t.Fatal(err)
		}
		f.waitEndpoints("svc", promptly)
		f.waitReady("svc", true, kvopv1.ReasonRegistered, 0)

		// A service rename moves the entries: none is left under the old name.
		updateRegistration(t, reg, func(r *kvopv1.Registration) {
			r.Spec.Selector.MatchLabels = map[string]string{"app": "blue"}
			r.Spec.Service = "svc-v2"
		})
		f.waitEndpoints("svc-v2", timeout, "10.0.2.10:80", "10.0.2.11:80", "10.0.2.20:80")
		f.waitEndpoints("svc", promptly)
		if reg = f.waitReady("svc", true, kvopv1.ReasonRegistered, 3); reg.Status.Service != "svc-v2" {
			t.Errorf("status.service = %q, want svc-v2", reg.Status.Service)
		}
	})
}

func TestNamedPort(t *testing.T) {
	t.Parallel()
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		f := newFixture(t, tg, true)
		f.createRegistration("grpc", "grpc", intstr.FromString("grpc"))
		f.readyPod("grpc-0", "grpc", "10.0.3.10",
			corev1.ContainerPort{Name: "http", ContainerPort: 8080}, corev1.ContainerPort{Name: "grpc", ContainerPort: 9090})
		f.readyPod("grpc-1", "grpc", "10.0.3.11", corev1.ContainerPort{Name: "grpc", ContainerPort: 9191})
		f.readyPod("grpc-2", "grpc", "10.0.3.12", corev1.ContainerPort{Name: "http", ContainerPort: 8080})
		f.waitEndpoints("grpc", timeout, "10.0.3.10:9090", "10.0.3.11:9191")

		reg := f.waitReady("grpc", true, kvopv1.ReasonRegistered, 2)
		msg := apimeta.FindStatusCondition(reg.Status.Conditions, kvopv1.ConditionReady).Message
		if !strings.Contains(msg, `grpc-2 (no container port named "grpc")`) {
			t.Errorf("Ready message %q does not name the skipped pod", msg)
		}
		f.waitEvent("grpc", "PodSkipped", `grpc-2 (no container port named "grpc")`)
	})
}

// TestDeleteRegistration: the finalizer removes every entry of the Registration, and only its
// own: another owner's entry in the same service stays.
func TestDeleteRegistration(t *testing.T) {
	t.Parallel()
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		f := newFixture(t, tg, true)
		foreign := discovery.Entry{Service: "shop", Address: "192.168.0.1", Port: 80, Owner: "other-cluster/xyz"}
		if err := f.registry.Register(context.Background(), foreign, longTTL); err != nil {
			t.Fatal(err)
		}
		reg := f.createRegistration("shop", "shop", intstr.FromInt32(80))
		f.readyPod("shop-0", "shop", "10.0.4.10")
		f.readyPod("shop-1", "shop", "10.0.4.11")
		f.waitEndpoints("shop", timeout, "10.0.4.10:80", "10.0.4.11:80", "192.168.0.1:80")

		start := time.Now()
		if err := operatortest.Client.Delete(context.Background(), reg); err != nil {
			t.Fatal(err)
		}
		f.waitEndpoints("shop", promptly, "192.168.0.1:80")
		operatortest.Eventually(t, timeout, func() (bool, string) {
			err := operatortest.Client.Get(context.Background(), client.ObjectKeyFromObject(reg), &kvopv1.Registration{})
			return apierrors.IsNotFound(err), fmt.Sprintf("Registration still there (finalizer kept): %v", err)
		})
		t.Logf("%s: Registration deleted -> entries and object gone in %s", tg.Backend, time.Since(start).Round(time.Millisecond))
		operatortest.Eventually(t, timeout, func() (bool, string) {
			_, ok := gauge(t, f.ns, "shop")
			return !ok, "kvop_registered_entries series of the deleted Registration still exported"
		})
		// And nothing deletes the other owner's entry later.
		f.waitEndpoints("shop", promptly, "192.168.0.1:80")
	})
}

// TestOtherOwnerNeverTouched: an entry of another owner at the very key of one of our pods is
// neither overwritten nor deleted — not while registering, not when deregistering, not when
// the Registration goes.
func TestOtherOwnerNeverTouched(t *testing.T) {
	t.Parallel()
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		f := newFixture(t, tg, true)
		ctx := context.Background()
		foreign := discovery.Entry{Service: "cart", Address: "10.0.5.10", Port: 80, Pod: "theirs", Owner: "other-cluster/xyz"}
		if err := f.registry.Register(ctx, foreign, longTTL); err != nil {
			t.Fatal(err)
		}
		before, err := f.reader.Get(ctx, f.entryKey("cart", "10.0.5.10", 80))
		if err != nil {
			t.Fatal(err)
		}
		reg := f.createRegistration("cart", "cart", intstr.FromInt32(80))
		clash := f.readyPod("cart-0", "cart", "10.0.5.10")
		f.readyPod("cart-1", "cart", "10.0.5.11")
		f.waitEndpoints("cart", timeout, "10.0.5.10:80", "10.0.5.11:80")
		f.waitReady("cart", false, registration.ReasonEntryConflict, 1)

		unchanged := func(when string) {
			t.Helper()
			p, err := f.reader.Get(ctx, f.entryKey("cart", "10.0.5.10", 80))
			if err != nil || string(p.Value) != string(before.Value) || p.LastIndex != before.LastIndex {
				t.Fatalf("%s: the other owner's entry changed: %v %+v", when, err, p)
			}
		}
		unchanged("after registering")

		operatortest.SetPodReady(t, clash, "10.0.5.10", false)
		f.waitReady("cart", true, kvopv1.ReasonRegistered, 1)
		unchanged("after the clashing pod went unready")

		if err := operatortest.Client.Delete(ctx, reg); err != nil {
			t.Fatal(err)
		}
		f.waitEndpoints("cart", promptly, "10.0.5.10:80")
		unchanged("after deleting the Registration")
	})
}

// TestManagerRestart: a restart of the manager never deletes a live entry. A watch records
// every state of the service directory while the manager stops, starts again with a new
// connection, and the old connection's TTL runs out.
func TestManagerRestart(t *testing.T) {
	t.Parallel()
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		f := newFixture(t, tg, true)
		// A short TTL so that the old connection's leases and sessions expire during the
		// observation: the rewritten entries must not go with them.
		const ttl = 5 * time.Second
		f.createRegistration("db", "db", intstr.FromInt32(5432), func(r *kvopv1.Registration) {
			r.Spec.TTL = &metav1.Duration{Duration: ttl}
		})
		live := []string{"10.0.6.10:5432", "10.0.6.11:5432", "10.0.6.12:5432"}
		for i, ip := range []string{"10.0.6.10", "10.0.6.11", "10.0.6.12"} {
			f.readyPod(fmt.Sprintf("db-%d", i), "db", ip)
		}
		f.waitEndpoints("db", timeout, live...)
		f.waitReady("db", true, kvopv1.ReasonRegistered, 3)

		type observation struct {
			at        time.Time
			endpoints []string
			indexes   map[string]uint64
		}
		var (
			mu   sync.Mutex
			seen []observation
		)
		ctx, cancel := context.WithCancel(context.Background())
		events, err := f.reader.WatchTree(ctx, discovery.ServiceDir(f.prefix, "db"))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for pairs := range events {
				o := observation{at: time.Now(), indexes: map[string]uint64{}}
				for _, p := range pairs {
					if e, err := discovery.Decode(p.Value); err == nil {
						o.endpoints = append(o.endpoints, e.Endpoint())
						o.indexes[e.Endpoint()] = p.LastIndex
					}
				}
				mu.Lock()
				seen = append(seen, o)
				mu.Unlock()
			}
		}()
		snapshot := func() []observation {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(seen)
		}
		operatortest.Eventually(t, timeout, func() (bool, string) {
			s := snapshot()
			return len(s) > 0 && len(s[0].endpoints) == 3, "the watch has not sent the first list"
		})
		first := snapshot()[0]

		stopped := time.Now()
		f.mgr.Stop()
		f.mgr = operatortest.StartManager(t, f.ns)
		// The new connection writes every entry again (new LastIndex): the restart settled.
		rewritten := func(o observation) bool {
			for _, ep := range live {
				if i, ok := o.indexes[ep]; !ok || i == first.indexes[ep] {
					return false
				}
			}
			return true
		}
		operatortest.Eventually(t, timeout, func() (bool, string) {
			s := snapshot()
			last := s[len(s)-1]
			return rewritten(last), fmt.Sprintf("entries not all rewritten by the new connection yet (last list %v %v, before %v)",
				last.endpoints, last.indexes, first.indexes)
		})
		settled := snapshot()
		t.Logf("%s: restart -> entries rewritten through the new connection %s after the stop", tg.Backend,
			settled[slices.IndexFunc(settled, rewritten)].at.Sub(stopped).Round(time.Millisecond))
		// Observe until the old connection's keys would have expired (restart-observation window).
		time.Sleep(time.Until(stopped.Add(tg.TTLBound(ttl) + time.Second)))
		f.waitReady("db", true, kvopv1.ReasonRegistered, 3)
		cancel()
		<-done

		lacking := func(o observation) []string {
			var missing []string
			for _, ep := range live {
				if !slices.Contains(o.endpoints, ep) {
					missing = append(missing, ep)
				}
			}
			return missing
		}
		all := snapshot()
		t.Logf("%s: %d lists observed", tg.Backend, len(all))
		// On every backend, ZooKeeper included: the stopping manager abandons its stores
		// (kvstore.Abandon), so even ephemeral entries outlive it until they are rewritten.
		check := all
		for _, o := range check {
			if missing := lacking(o); len(missing) > 0 {
				t.Errorf("at %s after the stop the service lacked live entries %v (list %v)",
					o.at.Sub(stopped).Round(time.Millisecond), missing, o.endpoints)
			}
		}
		f.waitEndpoints("db", promptly, live...)
	})
}

// TestEndpointMissing: without the KVEndpoint nothing happens but the condition; once it
// exists (and its store opens), the entries appear.
func TestEndpointMissing(t *testing.T) {
	t.Parallel()
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		f := newFixture(t, tg, false)
		f.createRegistration("late", "late", intstr.FromInt32(7000))
		f.readyPod("late-0", "late", "10.0.7.10")
		f.waitReady("late", false, kvopv1.ReasonEndpointNotFound, 0)

		start := time.Now()
		f.createEndpoint()
		f.waitEndpoints("late", timeout, "10.0.7.10:7000")
		t.Logf("%s: KVEndpoint created -> entry visible in %s", tg.Backend, time.Since(start).Round(time.Millisecond))
		f.waitReady("late", true, kvopv1.ReasonRegistered, 1)
	})
}

// TestDeleteWithoutEndpoint: a Registration whose KVEndpoint does not exist can be deleted
// (there is nothing kvop could reach; the finalizer goes).
func TestDeleteWithoutEndpoint(t *testing.T) {
	t.Parallel()
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		f := newFixture(t, tg, false)
		reg := f.createRegistration("orphan", "orphan", intstr.FromInt32(7000))
		f.waitReady("orphan", false, kvopv1.ReasonEndpointNotFound, 0)
		if err := operatortest.Client.Delete(context.Background(), reg); err != nil {
			t.Fatal(err)
		}
		operatortest.Eventually(t, timeout, func() (bool, string) {
			err := operatortest.Client.Get(context.Background(), client.ObjectKeyFromObject(reg), &kvopv1.Registration{})
			return apierrors.IsNotFound(err), fmt.Sprintf("Registration still there: %v", err)
		})
	})
}

// TestEndpointNotReady: a KVEndpoint whose store does not open (nothing listens) leaves the
// Registration not Ready, saying why.
func TestEndpointNotReady(t *testing.T) {
	t.Parallel()
	ns := operatortest.Namespace(t)
	operatortest.StartManager(t, ns)
	ep := &kvopv1.KVEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: endpointName, Namespace: ns},
		Spec: kvopv1.KVEndpointSpec{Backend: "etcd", Endpoints: []string{"127.0.0.1:1"},
			ConnectionTimeout: &metav1.Duration{Duration: time.Second}},
	}
	if err := operatortest.Client.Create(context.Background(), ep); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ns: ns}
	f.createRegistration("nowhere", "nowhere", intstr.FromInt32(80))
	f.readyPod("nowhere-0", "nowhere", "10.0.8.10")
	reg := f.waitReady("nowhere", false, kvopv1.ReasonEndpointNotReady, 0)
	if msg := apimeta.FindStatusCondition(reg.Status.Conditions, kvopv1.ConditionReady).Message; !strings.Contains(msg, endpointName) {
		t.Errorf("Ready message %q does not name the KVEndpoint", msg)
	}
}
