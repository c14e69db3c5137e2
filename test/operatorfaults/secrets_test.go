package operatorfaults

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/internal/operatortest"
	"github.com/kvop/kvop/internal/testservers"
)

// TestSecretsNeverShown runs a manager whose every log line (debug level included) is captured,
// through KVEndpoints whose Secrets are right and wrong — etcd passwords (accepted and refused),
// a Consul token (accepted and refused), mutual-TLS material (good, and a key of another CA),
// a password rotated while connected — and then looks for every Secret value, as it is and
// base64-encoded, in the logs, in every event of the namespace and in every status.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	ns := operatortest.Namespace(t)
	logs := &syncBuffer{}
	logger := zap.New(zap.WriteTo(logs), zap.UseDevMode(true), zap.Level(zapcore.Level(-10)))
	operatortest.StartManagerWith(t, ns, operatortest.ManagerOptions{Logger: &logger})

	etcdSrv, rootPassword := authEtcd(t)
	wrongPassword := random(t, "wrong-")
	rotated := random(t, "rotated-")
	consulToken := random(t, "")
	consulToken = consulToken[:8] + "-" + consulToken[8:12] + "-4" + consulToken[13:16] + "-8" + consulToken[17:20] + "-" + consulToken[20:32]
	wrongToken := "00000000-0000-4000-8000-" + random(t, "")[:12]
	consulSrv := testservers.Consul(t, testservers.WithConsulACL(consulToken))
	ts := testservers.TLSForTest(t)
	other, err := ts.OtherCA()
	if err != nil {
		t.Fatal(err)
	}
	tlsSrv := testservers.Etcd(t, testservers.WithTLS(ts))
	goodTLS := readFiles(t, map[string]string{"ca.crt": ts.CAFile, "tls.crt": ts.ClientCertFile, "tls.key": ts.ClientKeyFile})
	badTLS := readFiles(t, map[string]string{"ca.crt": ts.CAFile, "tls.crt": ts.ClientCertFile, "tls.key": other.ClientKeyFile})
	secrets := []string{rootPassword, wrongPassword, rotated, consulToken, wrongToken,
		string(goodTLS["tls.key"]), string(badTLS["tls.key"])}

	timeout := &metav1.Duration{Duration: 3 * time.Second}
	etcdSpec := kvopv1.KVEndpointSpec{Backend: "etcd", Endpoints: etcdSrv.Endpoints(), Prefix: "secrets", ConnectionTimeout: timeout}
	consulSpec := kvopv1.KVEndpointSpec{Backend: "consul", Endpoints: consulSrv.Endpoints(), Prefix: "secrets", ConnectionTimeout: timeout}
	tlsSpec := kvopv1.KVEndpointSpec{Backend: "etcd", Endpoints: tlsSrv.Endpoints(), Prefix: "secrets", ConnectionTimeout: timeout}
	for _, c := range []struct {
		name   string
		data   map[string][]byte
		spec   kvopv1.KVEndpointSpec
		tls    bool
		reason string
	}{
		{"etcd-good", map[string][]byte{"username": []byte("root"), "password": []byte(rootPassword)}, etcdSpec, false, kvopv1.ReasonConnected},
		{"etcd-wrong", map[string][]byte{"username": []byte("root"), "password": []byte(wrongPassword)}, etcdSpec, false, kvopv1.ReasonAuthFailed},
		{"consul-good", map[string][]byte{"token": []byte(consulToken)}, consulSpec, false, kvopv1.ReasonConnected},
		{"consul-wrong", map[string][]byte{"token": []byte(wrongToken)}, consulSpec, false, kvopv1.ReasonAuthFailed},
		{"mtls-good", goodTLS, tlsSpec, true, kvopv1.ReasonConnected},
		{"mtls-wrong-key", badTLS, tlsSpec, true, kvopv1.ReasonInvalidTLS},
	} {
		createSecret(t, ns, c.name, c.data)
		spec := c.spec
		if c.tls {
			spec.TLS = &kvopv1.TLSSpec{SecretRef: &kvopv1.LocalObjectReference{Name: c.name}}
		} else {
			spec.CredentialsSecretRef = &kvopv1.LocalObjectReference{Name: c.name}
		}
		e := &kvopv1.KVEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.name}, Spec: spec}
		if err := operatortest.Client.Create(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		// A Registration on each, so that its controller reports (and logs) the endpoint too.
		reg := &kvopv1.Registration{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.name},
			Spec: kvopv1.RegistrationSpec{EndpointRef: kvopv1.LocalObjectReference{Name: c.name},
				Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "none"}}, Port: intstrFrom(80)}}
		if err := operatortest.Client.Create(context.Background(), reg); err != nil {
			t.Fatal(err)
		}
		waitEndpointReason(t, ns, c.name, c.reason)
	}
	// A rotation: the password changes under a connected endpoint (and is wrong, then right).
	updateSecret(t, ns, "etcd-good", map[string][]byte{"username": []byte("root"), "password": []byte(rotated)})
	waitEndpointReason(t, ns, "etcd-good", kvopv1.ReasonAuthFailed)
	updateSecret(t, ns, "etcd-good", map[string][]byte{"username": []byte("root"), "password": []byte(rootPassword)})
	waitEndpointReason(t, ns, "etcd-good", kvopv1.ReasonConnected)
	time.Sleep(3 * time.Second) // a few periodic probes more, logged too

	if !strings.Contains(logs.String(), "opened store") {
		t.Fatalf("the captured logs miss the manager's own lines: capture broken?\n%s", logs.String())
	}
	var statuses, events []byte
	for _, list := range []client.ObjectList{&kvopv1.KVEndpointList{}, &kvopv1.RegistrationList{}, &kvopv1.LeaderLeaseList{},
		&eventsv1.EventList{}, &corev1.EventList{}} {
		if err := operatortest.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(list)
		switch list.(type) {
		case *eventsv1.EventList, *corev1.EventList:
			events = append(events, b...)
		default:
			statuses = append(statuses, b...)
		}
	}
	places := map[string][]byte{"logs": logs.Bytes(), "events": events, "statuses": statuses}
	for _, v := range secrets {
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v))} {
			for where, text := range places {
				if bytes.Contains(text, []byte(form)) {
					t.Errorf("a Secret value (%.12s...) appears in the %s", form, where)
				}
			}
		}
	}
	figure(t, "secrets: %d values (raw and base64) searched in %d bytes of logs, %d of events, %d of statuses: none found",
		len(secrets), len(places["logs"]), len(events), len(statuses))
}

// authEtcd starts an etcd of the test's own with authentication on, user root.
func authEtcd(t *testing.T) (*testservers.Server, string) {
	t.Helper()
	srv := testservers.Etcd(t)
	password := random(t, "root-")
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + srv.Addr}, DialTimeout: 5 * time.Second, Logger: uberzap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, step := range []func() error{
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, "root", password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("setting up etcd auth: %v", err)
		}
	}
	return srv, password
}

func waitEndpointReason(t *testing.T, ns, name, reason string) {
	t.Helper()
	operatortest.Eventually(t, settle, func() (bool, string) {
		e := &kvopv1.KVEndpoint{}
		if err := operatortest.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, e); err != nil {
			return false, err.Error()
		}
		c := apimeta.FindStatusCondition(e.Status.Conditions, kvopv1.ConditionReady)
		if c == nil {
			return false, name + ": no Ready condition"
		}
		return c.Reason == reason, name + ": Ready reason " + c.Reason + " (" + c.Message + "), want " + reason
	})
}

func createSecret(t *testing.T, ns, name string, data map[string][]byte) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
	if err := operatortest.Client.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func updateSecret(t *testing.T, ns, name string, data map[string][]byte) {
	t.Helper()
	s := &corev1.Secret{}
	if err := operatortest.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	s.Data = data
	if err := operatortest.Client.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func readFiles(t *testing.T, files map[string]string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for k, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = b
	}
	return out
}

// random returns prefix and 32 hex digits no message could hold by chance.
func random(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// syncBuffer is a bytes.Buffer that the manager's goroutines may write to at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *syncBuffer) String() string { return string(b.Bytes()) }
