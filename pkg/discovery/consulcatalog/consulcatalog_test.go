package consulcatalog

import (
	"reflect"
	"testing"

	"github.com/kvop/kvop/pkg/discovery"
)

func TestService(t *testing.T) {
	e := discovery.Entry{Service: "shop", Address: "10.0.0.1", Port: 80, Pod: "p", Namespace: "ns", Owner: "c/u",
		Metadata: map[string]string{"zone": "a", "app.kubernetes.io/name": "x", "consul-x": "y"}}
	svc := Service(e, []string{"v1"})
	want := map[string]string{"zone": "a", MetaExternalSource: "kubernetes", MetaNamespace: "ns", MetaPod: "p", MetaOwner: "c/u"}
	if svc.ID != "kvop-shop-10.0.0.1:80" || svc.Name != "shop" || !reflect.DeepEqual(svc.Meta, want) ||
		!reflect.DeepEqual(svc.Tags, []string{"v1"}) {
		t.Errorf("Service = %+v", svc)
	}
}
