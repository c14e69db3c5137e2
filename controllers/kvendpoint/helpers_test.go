package kvendpoint_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/internal/operatortest"
	"github.com/kvop/kvop/internal/testservers"
)

// Deadlines. A reconcile answers within a connection timeout (at most 5s here); the rest is
// slack for a loaded machine running the tests with -race.
const (
	settle = 30 * time.Second
)

func key(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

// createEndpoint creates a KVEndpoint with spec.
func createEndpoint(t *testing.T, ns, name string, spec kvopv1.KVEndpointSpec) *kvopv1.KVEndpoint {
	t.Helper()
	e := &kvopv1.KVEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := operatortest.Client.Create(context.Background(), e); err != nil {
		t.Fatalf("creating KVEndpoint %s: %v", name, err)
	}
	return e
}

// etcdSpec is the spec of an etcd endpoint at addrs.
func etcdSpec(addrs []string, prefix string, timeout time.Duration) kvopv1.KVEndpointSpec {
	return kvopv1.KVEndpointSpec{Backend: "etcd", Endpoints: addrs, Prefix: prefix,
		ConnectionTimeout: &metav1.Duration{Duration: timeout}}
}

// applySecret creates the Secret, or replaces its data.
func applySecret(t *testing.T, ns, name string, data map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	s := &corev1.Secret{}
	err := operatortest.Client.Get(ctx, key(ns, name), s)
	if err != nil {
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
		if err := operatortest.Client.Create(ctx, s); err != nil {
			t.Fatalf("creating Secret %s: %v", name, err)
		}
		return
	}
	s.Data = data
	if err := operatortest.Client.Update(ctx, s); err != nil {
		t.Fatalf("updating Secret %s: %v", name, err)
	}
}

// waitReady waits until the endpoint's Ready condition has status and reason for its current
// generation, and returns the endpoint.
func waitReady(t *testing.T, ns, name string, want metav1.ConditionStatus, reason string) *kvopv1.KVEndpoint {
	t.Helper()
	e := &kvopv1.KVEndpoint{}
	operatortest.Eventually(t, settle, func() (bool, string) {
		if err := operatortest.Client.Get(context.Background(), key(ns, name), e); err != nil {
			return false, err.Error()
		}
		c := apimeta.FindStatusCondition(e.Status.Conditions, kvopv1.ConditionReady)
		if c == nil {
			return false, fmt.Sprintf("KVEndpoint %s has no Ready condition", name)
		}
		if c.Status != want || c.Reason != reason || e.Status.ObservedGeneration != e.Generation {
			return false, fmt.Sprintf("KVEndpoint %s: Ready=%s %s (%q), observedGeneration %d of %d; want Ready=%s %s",
				name, c.Status, c.Reason, c.Message, e.Status.ObservedGeneration, e.Generation, want, reason)
		}
		return true, ""
	})
	return e
}

// events returns the events about the KVEndpoint name.
func events(t *testing.T, ns, name string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := operatortest.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatalf("listing events: %v", err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "KVEndpoint" && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for an event of type and reason about the KVEndpoint name.
func waitEvent(t *testing.T, ns, name, eventType, reason string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	operatortest.Eventually(t, settle, func() (bool, string) {
		evs := events(t, ns, name)
		for _, e := range evs {
			if e.Type == eventType && e.Reason == reason {
				found = e
				return true, ""
			}
		}
		var seen []string
		for _, e := range evs {
			seen = append(seen, e.Type+"/"+e.Reason)
		}
		return false, fmt.Sprintf("no %s event %s about %s; saw %v", eventType, reason, name, seen)
	})
	return found
}

// assertNoSecrets fails when any of values appears in the status or events of the endpoint.
func assertNoSecrets(t *testing.T, ns, name string, values ...string) {
	t.Helper()
	e := &kvopv1.KVEndpoint{}
	if err := operatortest.Client.Get(context.Background(), key(ns, name), e); err != nil {
		t.Fatal(err)
	}
	status, _ := json.Marshal(e.Status)
	evs, _ := json.Marshal(events(t, ns, name))
	for _, v := range values {
		if strings.Contains(string(status), v) {
			t.Errorf("a Secret value appears in the status of %s: %s", name, status)
		}
		if strings.Contains(string(evs), v) {
			t.Errorf("a Secret value appears in the events about %s: %s", name, evs)
		}
	}
}

// readyMetric returns the value of kvop_endpoint_ready for the endpoint, and whether it has a
// series.
func readyMetric(t *testing.T, ns, name string) (float64, bool) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "kvop_endpoint_ready" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == ns && labels["name"] == name {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// randomString returns a value no message could contain by chance.
func randomString(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// authEtcd starts an etcd of the test's own with authentication on: user root (all rights)
// and user app, who may read and write below prefix/. It returns the server and the passwords.
func authEtcd(t *testing.T, prefix string) (srv *testservers.Server, rootPassword, appPassword string) {
	t.Helper()
	srv = testservers.Etcd(t)
	rootPassword, appPassword = randomString(t, "root-"), randomString(t, "app-")
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{"http://" + srv.Addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, step := range []func() error{
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, "root", rootPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "app"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "app", prefix+"/", clientv3.GetPrefixRangeEnd(prefix+"/"),
				clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "app", appPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "app", "app"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("setting up etcd auth: %v", err)
		}
	}
	return srv, rootPassword, appPassword
}

// tlsFiles reads the named files of test TLS material.
func tlsFiles(t *testing.T, files map[string]string) map[string][]byte {
	t.Helper()
	data := map[string][]byte{}
	for k, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data[k] = b
	}
	return data
}
