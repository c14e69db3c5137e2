package kvendpoint

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/pkg/kvstore"
)

// readConnection against a fake API: what goes into the hash (and so reopens the store) and
// what is read from which Secret key.
func TestReadConnection(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = kvopv1.AddToScheme(scheme)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "creds"},
		Data: map[string][]byte{"username": []byte("u"), "password": []byte("pw-1"), "token": []byte("tok"), "note": []byte("a")}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(secret).Build()
	r := &Reconciler{Client: c}
	endpoint := &kvopv1.KVEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "e"},
		Spec: kvopv1.KVEndpointSpec{Backend: "etcd", Endpoints: []string{"a:1"}, Prefix: "/p/q/",
			ConnectionTimeout:    &metav1.Duration{Duration: 3 * time.Second},
			CredentialsSecretRef: &kvopv1.LocalObjectReference{Name: "creds"}}}
	read := func() *connection {
		t.Helper()
		s := &state{endpoint: endpoint}
		if err := r.readConnection(context.Background(), s); err != nil {
			t.Fatalf("readConnection: %v", err)
		}
		return s.conn
	}
	update := func(mutate func()) {
		t.Helper()
		mutate()
		if err := c.Update(context.Background(), secret); err != nil {
			t.Fatal(err)
		}
	}

	first := read()
	if first.prefix != "p/q" || first.config.Username != "u" || first.config.Password != "pw-1" ||
		first.config.ConnectionTimeout != 3*time.Second || first.config.Token != "" {
		t.Fatalf("connection %+v", first)
	}
	if read().hash != first.hash {
		t.Fatal("the hash changed although nothing did")
	}
	update(func() { secret.Data["note"] = []byte("b") })
	if read().hash != first.hash {
		t.Error("a Secret key the connection does not use changed the hash")
	}
	update(func() { secret.Data["password"] = []byte("pw-2") })
	second := read()
	if second.hash == first.hash {
		t.Error("a new password did not change the hash")
	}
	endpoint.Spec.Backend = "consul"
	if third := read(); third.config.Token != "tok" || third.config.Password != "" || third.hash == second.hash {
		t.Errorf("consul: %+v", third)
	}

	if got := first.redact("auth as u failed with pw-1!"); strings.Contains(got, "pw-1") {
		t.Errorf("redact left the password: %q", got)
	}
}

func TestReasonFor(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{kvstore.Mark(kvstore.ErrNotReachable, errors.New("dial")), kvopv1.ReasonUnreachable},
		{&kvstore.Error{Backend: "etcd", Op: "open", Err: kvstore.ErrAuthFailed}, kvopv1.ReasonAuthFailed},
		{context.DeadlineExceeded, kvopv1.ReasonUnreachable},
		{errors.New("something else"), kvopv1.ReasonProbeFailed},
	} {
		if got := reasonFor(c.err); got != c.want {
			t.Errorf("reasonFor(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

// The retry after a failure doubles from a second up to the probe interval.
func TestRequeueAfter(t *testing.T) {
	r := &Reconciler{ProbeInterval: 30 * time.Second}
	at := func(failingFor time.Duration) *kvopv1.KVEndpoint {
		return &kvopv1.KVEndpoint{Status: kvopv1.KVEndpointStatus{Conditions: []metav1.Condition{{
			Type: kvopv1.ConditionReady, Status: metav1.ConditionFalse,
			LastTransitionTime: metav1.NewTime(time.Now().Add(-failingFor)),
		}}}}
	}
	retry := verdict{retry: true}
	for _, c := range []struct {
		name       string
		failingFor time.Duration
		v          verdict
		min, max   time.Duration
	}{
		{"ready: the periodic probe", 0, verdict{ready: true}, 30 * time.Second, 30 * time.Second},
		{"bad Secret: the watch tells us", time.Hour, verdict{}, 0, 0},
		{"just failed", 0, retry, time.Second, time.Second},
		{"failing for 5s", 5 * time.Second, retry, 5 * time.Second, 6 * time.Second},
		{"failing for long", time.Hour, retry, 30 * time.Second, 30 * time.Second},
	} {
		if got := r.requeueAfter(at(c.failingFor), c.v); got < c.min || got > c.max {
			t.Errorf("%s: requeue after %s, want %s..%s", c.name, got, c.min, c.max)
		}
	}
}

func TestRoundLatency(t *testing.T) {
	for in, want := range map[time.Duration]string{
		1234567 * time.Nanosecond:  "1.23ms",
		345678 * time.Nanosecond:   "346µs",
		15345 * time.Microsecond:   "15.3ms",
		1234567 * time.Microsecond: "1.235s",
	} {
		if got := roundLatency(in).String(); got != want {
			t.Errorf("roundLatency(%s) = %s, want %s", in, got, want)
		}
	}
}
