package v1_test

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kvopv1 "github.com/kvop/kvop/api/v1"
)

func meta() metav1.ObjectMeta { return metav1.ObjectMeta{GenerateName: "t-", Namespace: "default"} }

func kve(spec kvopv1.KVEndpointSpec) *kvopv1.KVEndpoint {
	return &kvopv1.KVEndpoint{ObjectMeta: meta(), Spec: spec}
}

func withPrefix(s kvopv1.KVEndpointSpec, p string) kvopv1.KVEndpointSpec { s.Prefix = p; return s }

func withTimeout(s kvopv1.KVEndpointSpec, d string) kvopv1.KVEndpointSpec {
	s.ConnectionTimeout = dur(d)
	return s
}

func kreg(change func(*kvopv1.RegistrationSpec)) *kvopv1.Registration {
	spec := registration()
	change(&spec)
	return &kvopv1.Registration{ObjectMeta: meta(), Spec: spec}
}

func klease(change func(*kvopv1.LeaderLeaseSpec)) *kvopv1.LeaderLease {
	spec := lease()
	change(&spec)
	return &kvopv1.LeaderLease{ObjectMeta: meta(), Spec: spec}
}

// raw builds an object from spec JSON, for values the Go types cannot even hold.
func raw(kind, specJSON string) client.Object {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(kvopv1.GroupVersion.String())
	u.SetKind(kind)
	u.SetNamespace("default")
	u.SetGenerateName("t-")
	var spec map[string]any
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		panic(err)
	}
	u.Object["spec"] = spec
	return u
}

func kveRaw(spec string) client.Object    { return raw("KVEndpoint", spec) }
func kleaseRaw(spec string) client.Object { return raw("LeaderLease", spec) }
