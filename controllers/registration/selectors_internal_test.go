package registration

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	kvopv1 "github.com/kvop/kvop/api/v1"
)

func TestSelectorIndex(t *testing.T) {
	reg := func(ns, name string, gen int64, sel metav1.LabelSelector) *kvopv1.Registration {
		r := &kvopv1.Registration{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: gen}}
		r.Spec.Selector = sel
		return r
	}
	matchApp := func(app string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
	}
	names := func(ns string, set labels.Set, x *selectorIndex) []string {
		var out []string
		for _, r := range x.matching(ns, set) {
			out = append(out, r.Name)
		}
		return out
	}
	var x selectorIndex // the zero value is ready
	if got := names("shop", labels.Set{"app": "web"}, &x); got != nil {
		t.Fatalf("empty index matched %v", got)
	}
	x.set(reg("shop", "web", 1, matchApp("web")))
	x.set(reg("shop", "api", 1, matchApp("api")))
	x.set(reg("other", "web", 1, matchApp("web")))
	if got := names("shop", labels.Set{"app": "web", "tier": "1"}, &x); len(got) != 1 || got[0] != "web" {
		t.Errorf("shop app=web matched %v, want [web] (and nothing from another namespace)", got)
	}
	// A new generation is parsed again; the same generation is not.
	x.set(reg("shop", "web", 2, matchApp("front")))
	if got := names("shop", labels.Set{"app": "front"}, &x); len(got) != 1 {
		t.Errorf("after a selector change: %v, want [web]", got)
	}
	x.set(reg("shop", "web", 2, matchApp("ignored")))
	if got := names("shop", labels.Set{"app": "front"}, &x); len(got) != 1 {
		t.Errorf("same generation re-parsed: %v", got)
	}
	// A selector that does not parse, a deletion and a drop select nothing.
	bad := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Bogus"}}}
	x.set(reg("shop", "api", 2, bad))
	if got := names("shop", labels.Set{"app": "api"}, &x); got != nil {
		t.Errorf("invalid selector matched %v", got)
	}
	deleting := reg("shop", "web", 2, matchApp("front"))
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	x.set(deleting)
	if got := names("shop", labels.Set{"app": "front"}, &x); got != nil {
		t.Errorf("deleting Registration matched %v", got)
	}
	x.drop(types.NamespacedName{Namespace: "other", Name: "web"})
	if len(x.byNS) != 0 {
		t.Errorf("index not empty after every Registration left: %v", x.byNS)
	}
}
