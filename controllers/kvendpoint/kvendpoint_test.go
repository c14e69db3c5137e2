package kvendpoint_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/operatortest"
	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

func TestMain(m *testing.M) { operatortest.Main(m) }

// Every backend: the endpoint becomes Ready/Connected, with the probe's time and latency, a
// store in the pool, and its metric at 1.
func TestConnectedOnEveryBackend(t *testing.T) {
	t.Parallel()
	ns := operatortest.Namespace(t)
	mgr := operatortest.StartManager(t, ns)
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		tg = tg.Fresh(t)
		name := string(tg.Backend)
		operatortest.CreateEndpoint(t, ns, name, tg, "kvendpoint-"+ns)
		e := waitReady(t, ns, name, metav1.ConditionTrue, kvopv1.ReasonConnected)

		if e.Status.LastProbeTime == nil || e.Status.ProbeLatency == nil || e.Status.ProbeLatency.Duration <= 0 {
			t.Errorf("lastProbeTime %v, probeLatency %v: want both set", e.Status.LastProbeTime, e.Status.ProbeLatency)
		}
		msg := apimetaReady(e).Message
		if !strings.HasPrefix(msg, string(tg.Backend)+" at "+tg.Addrs[0]) || !strings.Contains(msg, "answered in") {
			t.Errorf("Ready message %q: want %q at its address, answered in ...", msg, tg.Backend)
		}
		if s := mgr.Pool.Get(key(ns, name)); s == nil || s.Backend != tg.Backend {
			t.Errorf("pool store %+v: want an open %s store", s, tg.Backend)
		}
		if v, ok := readyMetric(t, ns, name); !ok || v != 1 {
			t.Errorf("kvop_endpoint_ready = %v (series present: %v), want 1", v, ok)
		}
		waitEvent(t, ns, name, corev1.EventTypeNormal, kvopv1.ReasonConnected)
		waitEvent(t, ns, name, corev1.EventTypeNormal, "StoreOpened")

		// The periodic probe (2s in tests) moves lastProbeTime on, without a spec change.
		first := e.Status.LastProbeTime.Time
		operatortest.Eventually(t, settle, func() (bool, string) {
			if err := operatortest.Client.Get(context.Background(), key(ns, name), e); err != nil {
				return false, err.Error()
			}
			return e.Status.LastProbeTime.After(first), "lastProbeTime did not move on: no periodic probe"
		})
	})
}

// A backend nobody answers at: Unreachable within seconds, and the controller goes on serving
// other endpoints.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	ns := operatortest.Namespace(t)
	operatortest.StartManager(t, ns)
	createEndpoint(t, ns, "nowhere", etcdSpec([]string{closedPort(t)}, "kvop", time.Second))
	e := waitReady(t, ns, "nowhere", metav1.ConditionFalse, kvopv1.ReasonUnreachable)
	if e.Status.ProbeLatency != nil {
		t.Errorf("probeLatency %v for a backend that never answered", e.Status.ProbeLatency)
	}
	if e.Status.LastProbeTime == nil {
		t.Error("lastProbeTime not set after a failed attempt")
	}
	waitEvent(t, ns, "nowhere", corev1.EventTypeWarning, kvopv1.ReasonUnreachable)
	if v, ok := readyMetric(t, ns, "nowhere"); !ok || v != 0 {
		t.Errorf("kvop_endpoint_ready = %v (series present: %v), want 0", v, ok)
	}

	tg := backendtest.Get(t, kvstore.Etcd)
	operatortest.CreateEndpoint(t, ns, "somewhere", tg, "kvendpoint-"+ns)
	waitReady(t, ns, "somewhere", metav1.ConditionTrue, kvopv1.ReasonConnected)
	// Still retried (with backoff), still unreachable.
	waitReady(t, ns, "nowhere", metav1.ConditionFalse, kvopv1.ReasonUnreachable)
}

// Wrong credentials are AuthFailed; fixing the Secret connects without a restart; changing the
// Secret again replaces the store; no password ever shows.
func TestAuthFailedThenSecretFixed(t *testing.T) {
	t.Parallel()
	const prefix = "authtest"
	srv, rootPassword, appPassword := authEtcd(t, prefix)
	ns := operatortest.Namespace(t)
	mgr := operatortest.StartManager(t, ns)
	wrong := randomString(t, "wrong-")

	applySecret(t, ns, "creds", map[string][]byte{"username": []byte("root"), "password": []byte(wrong)})
	spec := etcdSpec(srv.Endpoints(), prefix, 2*time.Second)
	spec.CredentialsSecretRef = &kvopv1.LocalObjectReference{Name: "creds"}
	createEndpoint(t, ns, "auth", spec)
	waitReady(t, ns, "auth", metav1.ConditionFalse, kvopv1.ReasonAuthFailed)
	waitEvent(t, ns, "auth", corev1.EventTypeWarning, kvopv1.ReasonAuthFailed)
	if mgr.Pool.Get(key(ns, "auth")) != nil {
		t.Error("a store is in the pool although it never opened")
	}

	applySecret(t, ns, "creds", map[string][]byte{"username": []byte("root"), "password": []byte(rootPassword)})
	waitReady(t, ns, "auth", metav1.ConditionTrue, kvopv1.ReasonConnected)
	first := mgr.Pool.Get(key(ns, "auth"))
	if first == nil {
		t.Fatal("Connected, but no store in the pool")
	}

	// Rotating to another user replaces the connection (a new generation for subscribers).
	applySecret(t, ns, "creds", map[string][]byte{"username": []byte("app"), "password": []byte(appPassword)})
	operatortest.Eventually(t, settle, func() (bool, string) {
		s := mgr.Pool.Get(key(ns, "auth"))
		return s != nil && s.Generation > first.Generation, "the store was not replaced after the Secret changed"
	})
	waitReady(t, ns, "auth", metav1.ConditionTrue, kvopv1.ReasonConnected)

	assertNoSecrets(t, ns, "auth", wrong, rootPassword, appPassword)
}

// A missing Secret is SecretNotFound, one without the needed keys InvalidSecret; creating and
// completing it connects.
func TestSecretNotFoundThenCreated(t *testing.T) {
	t.Parallel()
	const prefix = "secrettest"
	srv, rootPassword, _ := authEtcd(t, prefix)
	ns := operatortest.Namespace(t)
	operatortest.StartManager(t, ns)

	spec := etcdSpec(srv.Endpoints(), prefix, 2*time.Second)
	spec.CredentialsSecretRef = &kvopv1.LocalObjectReference{Name: "later"}
	createEndpoint(t, ns, "e", spec)
	e := waitReady(t, ns, "e", metav1.ConditionFalse, kvopv1.ReasonSecretNotFound)
	if msg := apimetaReady(e).Message; !strings.Contains(msg, `"later"`) {
		t.Errorf("message %q does not name the Secret", msg)
	}

	applySecret(t, ns, "later", map[string][]byte{"username": []byte("root")})
	e = waitReady(t, ns, "e", metav1.ConditionFalse, kvopv1.ReasonInvalidSecret)
	if msg := apimetaReady(e).Message; !strings.Contains(msg, `"password"`) {
		t.Errorf("message %q does not name the missing key", msg)
	}

	applySecret(t, ns, "later", map[string][]byte{"username": []byte("root"), "password": []byte(rootPassword)})
	waitReady(t, ns, "e", metav1.ConditionTrue, kvopv1.ReasonConnected)
	assertNoSecrets(t, ns, "e", rootPassword)
}

// TLS to an etcd that requires client certificates.
func TestTLS(t *testing.T) {
	t.Parallel()
	ts := testservers.TLSForTest(t)
	other, err := ts.OtherCA()
	if err != nil {
		t.Fatal(err)
	}
	srv := testservers.Etcd(t, testservers.WithTLS(ts))
	ns := operatortest.Namespace(t)
	mgr := operatortest.StartManager(t, ns)

	endpoint := func(t *testing.T, name string, data map[string][]byte, tlsSpec kvopv1.TLSSpec) {
		t.Helper()
		if data != nil {
			applySecret(t, ns, name, data)
			tlsSpec.SecretRef = &kvopv1.LocalObjectReference{Name: name}
		}
		spec := etcdSpec(srv.Endpoints(), "tlstest", 2*time.Second)
		spec.TLS = &tlsSpec
		createEndpoint(t, ns, name, spec)
	}
	good := tlsFiles(t, map[string]string{"ca.crt": ts.CAFile, "tls.crt": ts.ClientCertFile, "tls.key": ts.ClientKeyFile})

	t.Run("mutual TLS", func(t *testing.T) {
		endpoint(t, "mtls", good, kvopv1.TLSSpec{})
		waitReady(t, ns, "mtls", metav1.ConditionTrue, kvopv1.ReasonConnected)
		if mgr.Pool.Get(key(ns, "mtls")) == nil {
			t.Error("no store in the pool")
		}
		assertNoSecrets(t, ns, "mtls", string(good["tls.key"]))
	})

	t.Run("untrusted server certificate", func(t *testing.T) {
		data := tlsFiles(t, map[string]string{"ca.crt": other.CAFile, "tls.crt": ts.ClientCertFile, "tls.key": ts.ClientKeyFile})
		endpoint(t, "wrong-ca", data, kvopv1.TLSSpec{})
		e := waitReady(t, ns, "wrong-ca", metav1.ConditionFalse, kvopv1.ReasonAuthFailed)
		t.Logf("wrong CA: %s", apimetaReady(e).Message)
	})

	t.Run("insecureSkipVerify warns", func(t *testing.T) {
		data := tlsFiles(t, map[string]string{"tls.crt": ts.ClientCertFile, "tls.key": ts.ClientKeyFile})
		endpoint(t, "insecure", data, kvopv1.TLSSpec{InsecureSkipVerify: true})
		waitReady(t, ns, "insecure", metav1.ConditionTrue, kvopv1.ReasonConnected)
		waitEvent(t, ns, "insecure", corev1.EventTypeWarning, "InsecureSkipVerify")
	})

	t.Run("system roots do not trust a test CA", func(t *testing.T) {
		endpoint(t, "no-secret", nil, kvopv1.TLSSpec{})
		waitReady(t, ns, "no-secret", metav1.ConditionFalse, kvopv1.ReasonAuthFailed)
	})

	// Material that cannot be used is refused before any connection is tried.
	for _, c := range []struct {
		name   string
		data   map[string][]byte
		reason string
	}{
		{"bad-pem", map[string][]byte{"ca.crt": []byte("not a certificate")}, kvopv1.ReasonInvalidTLS},
		{"cert-without-key", map[string][]byte{"ca.crt": good["ca.crt"], "tls.crt": good["tls.crt"]}, kvopv1.ReasonInvalidTLS},
		{"key-without-cert", map[string][]byte{"ca.crt": good["ca.crt"], "tls.key": good["tls.key"]}, kvopv1.ReasonInvalidTLS},
		{"mismatched-pair", map[string][]byte{"ca.crt": good["ca.crt"], "tls.crt": good["tls.crt"],
			"tls.key": tlsFiles(t, map[string]string{"k": other.ClientKeyFile})["k"]}, kvopv1.ReasonInvalidTLS},
		{"no-ca", map[string][]byte{"tls.crt": good["tls.crt"], "tls.key": good["tls.key"]}, kvopv1.ReasonInvalidSecret},
	} {
		t.Run(c.name, func(t *testing.T) {
			endpoint(t, c.name, c.data, kvopv1.TLSSpec{})
			e := waitReady(t, ns, c.name, metav1.ConditionFalse, c.reason)
			if msg := apimetaReady(e).Message; !strings.Contains(msg, `"`+c.name+`"`) {
				t.Errorf("message %q does not name the Secret", msg)
			}
			assertNoSecrets(t, ns, c.name, string(good["tls.key"]))
		})
	}

	// Fixing a bad Secret connects, without a restart.
	t.Run("fixed", func(t *testing.T) {
		applySecret(t, ns, "bad-pem", good)
		waitReady(t, ns, "bad-pem", metav1.ConditionTrue, kvopv1.ReasonConnected)
	})
}

// A deleted endpoint's store is closed and taken out of the pool, and its metric goes.
func TestDeleted(t *testing.T) {
	t.Parallel()
	ns := operatortest.Namespace(t)
	mgr := operatortest.StartManager(t, ns)
	e := operatortest.CreateEndpoint(t, ns, "gone", backendtest.Get(t, kvstore.Etcd), "kvendpoint-"+ns)
	waitReady(t, ns, "gone", metav1.ConditionTrue, kvopv1.ReasonConnected)
	store := mgr.Pool.Get(key(ns, "gone"))
	if store == nil {
		t.Fatal("no store in the pool")
	}

	if err := operatortest.Client.Delete(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	operatortest.Eventually(t, settle, func() (bool, string) {
		return mgr.Pool.Get(key(ns, "gone")) == nil, "the deleted endpoint's store is still in the pool"
	})
	if _, err := store.Get(context.Background(), store.Key("x")); err == nil {
		t.Error("the removed store still answers: it was not closed")
	}
	operatortest.Eventually(t, settle, func() (bool, string) {
		_, ok := readyMetric(t, ns, "gone")
		return !ok, "kvop_endpoint_ready still has a series for the deleted endpoint"
	})
}

func apimetaReady(e *kvopv1.KVEndpoint) metav1.Condition {
	for _, c := range e.Status.Conditions {
		if c.Type == kvopv1.ConditionReady {
			return c
		}
	}
	return metav1.Condition{}
}
