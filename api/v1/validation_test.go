package v1_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/internal/testservers"
)

var kube *testservers.Kube

func TestMain(m *testing.M) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = kvopv1.AddToScheme(scheme)
	var err error
	kube, err = testservers.StartKube(testservers.KubeOptions{CRDDirectoryPaths: []string{"../../config/crd/bases"}, Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "test API server:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = kube.Stop()
	os.Exit(code)
}

func dur(s string) *metav1.Duration {
	d, _ := time.ParseDuration(s)
	return &metav1.Duration{Duration: d}
}

func ref(name string) kvopv1.LocalObjectReference { return kvopv1.LocalObjectReference{Name: name} }

func etcdEndpoint() kvopv1.KVEndpointSpec {
	return kvopv1.KVEndpointSpec{Backend: "etcd", Endpoints: []string{"etcd-0.etcd:2379"}}
}

func registration() kvopv1.RegistrationSpec {
	return kvopv1.RegistrationSpec{EndpointRef: ref("kv"), Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Port: intstr.FromInt32(8080)}
}

func lease() kvopv1.LeaderLeaseSpec { return kvopv1.LeaderLeaseSpec{EndpointRef: ref("kv")} }

// TestInvalidObjectsAreRefused: the API server refuses each bad object with a message that
// names what is wrong, so `kubectl apply` tells the user before anything runs.
func TestInvalidObjectsAreRefused(t *testing.T) {
	cases := []struct {
		name string
		obj  client.Object
		want string // a fragment of the API server's message
	}{
		{"endpoint without backend", kve(kvopv1.KVEndpointSpec{Endpoints: []string{"a:1"}}), "spec.backend"},
		{"endpoint unknown backend", kve(kvopv1.KVEndpointSpec{Backend: "redis", Endpoints: []string{"a:1"}}), "Unsupported value"},
		{"etcd without endpoints", kve(kvopv1.KVEndpointSpec{Backend: "etcd"}), "spec.endpoints is required"},
		{"boltdb with endpoints", kve(kvopv1.KVEndpointSpec{Backend: "boltdb", Path: "/data/kv.db", Endpoints: []string{"a:1"}}), "forbidden for boltdb"},
		{"boltdb without path", kve(kvopv1.KVEndpointSpec{Backend: "boltdb"}), "spec.path is required for boltdb"},
		{"consul with path", kve(kvopv1.KVEndpointSpec{Backend: "consul", Endpoints: []string{"a:8500"}, Path: "/x"}), "only allowed for boltdb"},
		{"boltdb relative path", kve(kvopv1.KVEndpointSpec{Backend: "boltdb", Path: "data/kv.db"}), "spec.path"},
		{"boltdb with tls", kve(kvopv1.KVEndpointSpec{Backend: "boltdb", Path: "/kv.db", TLS: &kvopv1.TLSSpec{ServerName: "x"}}), "do not apply"},
		{"endpoint without port", kve(kvopv1.KVEndpointSpec{Backend: "etcd", Endpoints: []string{"etcd-0"}}), "spec.endpoints[0]"},
		{"endpoint with scheme", kve(kvopv1.KVEndpointSpec{Backend: "etcd", Endpoints: []string{"http://etcd:2379"}}), "spec.endpoints[0]"},
		{"prefix with ..", kve(withPrefix(etcdEndpoint(), "kvop/../x")), "'.' or '..'"},
		{"prefix with space", kve(withPrefix(etcdEndpoint(), "a b")), "spec.prefix"},
		{"timeout too short", kve(withTimeout(etcdEndpoint(), "1ms")), "between 100ms and 5m"},
		{"timeout not a duration", kveRaw(`{"backend":"etcd","endpoints":["a:1"],"connectionTimeout":"soon"}`), "connectionTimeout"},
		{"duplicate endpoints", kve(kvopv1.KVEndpointSpec{Backend: "etcd", Endpoints: []string{"a:1", "a:1"}}), "Duplicate value"},
		{"registration without endpointRef", kreg(func(s *kvopv1.RegistrationSpec) { s.EndpointRef = ref("") }), "spec.endpointRef.name"},
		{"registration port 0", kreg(func(s *kvopv1.RegistrationSpec) { s.Port = intstr.FromInt32(0) }), "spec.port must be"},
		{"registration port 70000", kreg(func(s *kvopv1.RegistrationSpec) { s.Port = intstr.FromInt32(70000) }), "spec.port must be"},
		{"registration bad port name", kreg(func(s *kvopv1.RegistrationSpec) { s.Port = intstr.FromString("HTTP_Port") }), "spec.port must be"},
		{"registration port name too long", kreg(func(s *kvopv1.RegistrationSpec) { s.Port = intstr.FromString("a-very-long-port-name") }), "spec.port must be"},
		{"registration ttl 1s", kreg(func(s *kvopv1.RegistrationSpec) { s.TTL = dur("1s") }), "spec.ttl must be between"},
		{"registration bad service", kreg(func(s *kvopv1.RegistrationSpec) { s.Service = "web/api" }), "spec.service"},
		{"registration bad selector operator", kreg(func(s *kvopv1.RegistrationSpec) {
			s.Selector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}
		}), "operator must be In"},
		{"lease candidate selector In without values", klease(func(s *kvopv1.LeaderLeaseSpec) {
			s.Candidates = &kvopv1.Candidates{Selector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "In"}}}}
		}), "operator must be In"},
		{"lease without endpointRef", klease(func(s *kvopv1.LeaderLeaseSpec) { s.EndpointRef = ref("") }), "spec.endpointRef.name"},
		{"lease ttl 1s", klease(func(s *kvopv1.LeaderLeaseSpec) { s.TTL = dur("1s") }), "spec.ttl must be between"},
		{"lease ttl 2h", klease(func(s *kvopv1.LeaderLeaseSpec) { s.TTL = dur("2h") }), "spec.ttl must be between"},
		{"lease key with ..", klease(func(s *kvopv1.LeaderLeaseSpec) { s.Key = "a/../b" }), "'.' or '..'"},
		{"lease bad label", klease(func(s *kvopv1.LeaderLeaseSpec) { s.LeaderLabel = "not a label" }), "spec.leaderLabel"},
		{"lease label with two slashes", klease(func(s *kvopv1.LeaderLeaseSpec) { s.LeaderLabel = "a/b/c" }), "spec.leaderLabel"},
		{"lease candidates without selector", kleaseRaw(`{"endpointRef":{"name":"kv"},"candidates":{}}`), "spec.candidates.selector"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := kube.Client.Create(ctx, tc.obj)
			if err == nil {
				t.Fatalf("accepted: %+v", tc.obj)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("refused with %q, want a message containing %q", err, tc.want)
			}
		})
	}
}

func TestValidObjectsGetDefaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := kve(etcdEndpoint())
	if err := kube.Client.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	if e.Spec.Prefix != "kvop" || e.Spec.ConnectionTimeout == nil || e.Spec.ConnectionTimeout.Duration != 10*time.Second {
		t.Fatalf("endpoint defaults: prefix %q timeout %v", e.Spec.Prefix, e.Spec.ConnectionTimeout)
	}
	b := kve(kvopv1.KVEndpointSpec{Backend: "boltdb", Path: "/var/lib/kvop/kv.db"})
	if err := kube.Client.Create(ctx, b); err != nil {
		t.Fatalf("boltdb endpoint refused: %v", err)
	}
	r := kreg(func(s *kvopv1.RegistrationSpec) { s.Port = intstr.FromString("http") })
	if err := kube.Client.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.Spec.TTL == nil || r.Spec.TTL.Duration != 30*time.Second {
		t.Fatalf("registration ttl default = %v, want 30s", r.Spec.TTL)
	}
	l := klease(func(s *kvopv1.LeaderLeaseSpec) {})
	if err := kube.Client.Create(ctx, l); err != nil {
		t.Fatal(err)
	}
	if l.Spec.TTL == nil || l.Spec.TTL.Duration != 15*time.Second || l.Spec.LeaderLabel != kvopv1.DefaultLeaderLabel {
		t.Fatalf("lease defaults: ttl %v label %q", l.Spec.TTL, l.Spec.LeaderLabel)
	}
}
