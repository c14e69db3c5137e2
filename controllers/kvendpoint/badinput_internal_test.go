package kvendpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/internal/testservers"
)

// readWith runs readConnection for spec against a fake API holding secrets.
func readWith(t *testing.T, spec kvopv1.KVEndpointSpec, secrets ...*corev1.Secret) (*connection, error) {
	t.Helper()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = kvopv1.AddToScheme(scheme)
	b := fake.NewClientBuilder().WithScheme(scheme)
	for _, s := range secrets {
		b = b.WithObjects(s)
	}
	r := &Reconciler{Client: b.Build()}
	s := &state{endpoint: &kvopv1.KVEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "e"}, Spec: spec}}
	err := r.readConnection(context.Background(), s)
	return s.conn, err
}

func secret(name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Data: data}
}

func tlsSpec(t kvopv1.TLSSpec) kvopv1.KVEndpointSpec {
	return kvopv1.KVEndpointSpec{Backend: "etcd", Endpoints: []string{"a:1"}, TLS: &t}
}

func ref(name string) *kvopv1.LocalObjectReference { return &kvopv1.LocalObjectReference{Name: name} }

// The tls.Config a KVEndpoint gets: TLS 1.2 at least, the server certificate verified against
// the Secret's CA (or the system roots without a Secret), insecureSkipVerify only when asked —
// and then flagged, so that every open records a Warning event (see TestTLS).
func TestTLSConfig(t *testing.T) {
	ts := testservers.TLSForTest(t)
	files := map[string][]byte{}
	for k, p := range map[string]string{"ca.crt": ts.CAFile, "tls.crt": ts.ClientCertFile, "tls.key": ts.ClientKeyFile} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[k] = b
	}

	plain, err := readWith(t, kvopv1.KVEndpointSpec{Backend: "etcd", Endpoints: []string{"a:1"}})
	if err != nil || plain.config.TLS != nil {
		t.Fatalf("no spec.tls: TLS %v, %v; want plain text", plain.config.TLS, err)
	}

	for _, c := range []struct {
		name     string
		spec     kvopv1.TLSSpec
		data     map[string][]byte
		roots    bool // RootCAs from the Secret (else the system roots)
		certs    int
		insecure bool
	}{
		{"system roots", kvopv1.TLSSpec{}, nil, false, 0, false},
		{"CA only", kvopv1.TLSSpec{SecretRef: ref("s")}, map[string][]byte{"ca.crt": files["ca.crt"]}, true, 0, false},
		{"mutual", kvopv1.TLSSpec{SecretRef: ref("s"), ServerName: "etcd.test"}, files, true, 1, false},
		{"insecure, asked for", kvopv1.TLSSpec{SecretRef: ref("s"), InsecureSkipVerify: true},
			map[string][]byte{"tls.crt": files["tls.crt"], "tls.key": files["tls.key"]}, false, 1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var secrets []*corev1.Secret
			if c.data != nil {
				secrets = append(secrets, secret("s", c.data))
			}
			conn, err := readWith(t, tlsSpec(c.spec), secrets...)
			if err != nil {
				t.Fatal(err)
			}
			cfg := conn.config.TLS
			if cfg == nil || cfg.MinVersion != tls.VersionTLS12 {
				t.Fatalf("tls.Config %+v: want MinVersion TLS 1.2", cfg)
			}
			if cfg.InsecureSkipVerify != c.insecure || conn.insecure != c.insecure {
				t.Errorf("InsecureSkipVerify %v (flagged for a warning: %v), want %v", cfg.InsecureSkipVerify, conn.insecure, c.insecure)
			}
			if (cfg.RootCAs != nil) != c.roots || len(cfg.Certificates) != c.certs || cfg.ServerName != c.spec.ServerName {
				t.Errorf("RootCAs set %v, %d client certificates, ServerName %q; want %v, %d, %q",
					cfg.RootCAs != nil, len(cfg.Certificates), cfg.ServerName, c.roots, c.certs, c.spec.ServerName)
			}
		})
	}
}

// Secrets that are missing or malformed end the reconcile with a reason and a message that
// names the Secret and the key — never a panic, never the value.
func TestBadSecrets(t *testing.T) {
	garbage := []byte("\x00\xff\xfe\x01binary\x00garbage\x7f\x80")
	badPEM := []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
	creds := func(backend string) kvopv1.KVEndpointSpec {
		return kvopv1.KVEndpointSpec{Backend: kvopv1.Backend(backend), Endpoints: []string{"a:1"}, CredentialsSecretRef: ref("s")}
	}
	for _, c := range []struct {
		name    string
		spec    kvopv1.KVEndpointSpec
		data    map[string][]byte // nil: no Secret at all
		reason  string            // "": accepted
		mention string
	}{
		{"credentials Secret missing", creds("etcd"), nil, kvopv1.ReasonSecretNotFound, `"s"`},
		{"TLS Secret missing", tlsSpec(kvopv1.TLSSpec{SecretRef: ref("s")}), nil, kvopv1.ReasonSecretNotFound, `"s"`},
		{"Secret without data", creds("etcd"), map[string][]byte{}, kvopv1.ReasonInvalidSecret, `"username"`},
		{"a token Secret for etcd", creds("etcd"), map[string][]byte{"token": []byte("tok-123")}, kvopv1.ReasonInvalidSecret, `"username"`},
		{"a token Secret for zookeeper", creds("zookeeper"), map[string][]byte{"token": []byte("tok-123")}, kvopv1.ReasonInvalidSecret, `"username"`},
		{"a password Secret for consul", creds("consul"), map[string][]byte{"username": []byte("u"), "password": []byte("pw-123")}, kvopv1.ReasonInvalidSecret, `"token"`},
		{"empty password", creds("etcdv2"), map[string][]byte{"username": []byte("u"), "password": {}}, kvopv1.ReasonInvalidSecret, `"password"`},
		{"binary password", creds("etcd"), map[string][]byte{"username": []byte("u"), "password": garbage}, "", ""},
		{"binary garbage in ca.crt", tlsSpec(kvopv1.TLSSpec{SecretRef: ref("s")}), map[string][]byte{"ca.crt": garbage}, kvopv1.ReasonInvalidTLS, "ca.crt"},
		{"a PEM block that is no certificate", tlsSpec(kvopv1.TLSSpec{SecretRef: ref("s")}), map[string][]byte{"ca.crt": badPEM}, kvopv1.ReasonInvalidTLS, "ca.crt"},
		{"binary garbage as the key pair", tlsSpec(kvopv1.TLSSpec{SecretRef: ref("s"), InsecureSkipVerify: true}),
			map[string][]byte{"tls.crt": garbage, "tls.key": garbage}, kvopv1.ReasonInvalidTLS, "tls.key"},
		{"empty ca.crt", tlsSpec(kvopv1.TLSSpec{SecretRef: ref("s")}), map[string][]byte{"ca.crt": {}}, kvopv1.ReasonInvalidSecret, `"ca.crt"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var secrets []*corev1.Secret
			if c.data != nil {
				secrets = append(secrets, secret("s", c.data))
			}
			_, err := readWith(t, c.spec, secrets...)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var nr *notReady
			if !errors.As(err, &nr) {
				t.Fatalf("error %v, want a %s condition", err, c.reason)
			}
			if nr.reason != c.reason || !strings.Contains(nr.message, c.mention) || nr.retry {
				t.Errorf("%s %q (retry %v); want %s mentioning %s, not retried (the Secret watch brings the fix)",
					nr.reason, nr.message, nr.retry, c.reason, c.mention)
			}
			for _, v := range c.data {
				if len(v) > 3 && strings.Contains(nr.message, string(v)) {
					t.Errorf("the message quotes a Secret value: %q", nr.message)
				}
			}
		})
	}
}
