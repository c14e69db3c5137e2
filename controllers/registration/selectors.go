package registration

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kvopv1 "github.com/kvop/kvop/api/v1"
)

// selectorIndex holds the parsed pod selector of every Registration seen by Reconcile, by
// namespace, so that mapping a pod event to its Registrations (forPod, on every pod event of
// the cluster) neither lists and copies the namespace's Registrations nor parses their
// selectors again: at 10,000 pods and 1,000 Registrations that was ten million copies and
// parses while the pods turned Ready, and most of the manager's garbage.
//
// Reconcile keeps it current (set after each fetch, drop when the Registration is gone). What
// it may miss — a pod event before a Registration's first reconcile, or between a selector
// change and the reconcile that follows — costs nothing: that reconcile lists the pods itself.
type selectorIndex struct {
	mu   sync.RWMutex
	byNS map[string]map[string]indexedSelector // namespace → Registration name
}

type indexedSelector struct {
	generation int64
	selector   labels.Selector
}

// set records reg's selector (parsed only when its generation changed); a Registration being
// deleted or with a selector that does not parse selects nothing.
func (x *selectorIndex) set(reg *kvopv1.Registration) {
	x.mu.RLock()
	cur, ok := x.byNS[reg.Namespace][reg.Name]
	x.mu.RUnlock()
	if ok && cur.generation == reg.Generation && reg.DeletionTimestamp.IsZero() {
		return
	}
	sel, err := metav1.LabelSelectorAsSelector(&reg.Spec.Selector)
	if err != nil || !reg.DeletionTimestamp.IsZero() {
		x.drop(types.NamespacedName{Namespace: reg.Namespace, Name: reg.Name})
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byNS == nil {
		x.byNS = map[string]map[string]indexedSelector{}
	}
	if x.byNS[reg.Namespace] == nil {
		x.byNS[reg.Namespace] = map[string]indexedSelector{}
	}
	x.byNS[reg.Namespace][reg.Name] = indexedSelector{generation: reg.Generation, selector: sel}
}

// drop forgets a Registration.
func (x *selectorIndex) drop(nn types.NamespacedName) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.byNS[nn.Namespace], nn.Name)
	if len(x.byNS[nn.Namespace]) == 0 {
		delete(x.byNS, nn.Namespace)
	}
}

// matching returns the Registrations of namespace whose selector matches set.
func (x *selectorIndex) matching(namespace string, set labels.Set) []reconcile.Request {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []reconcile.Request
	for name, s := range x.byNS[namespace] {
		if s.selector.Matches(set) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: name}})
		}
	}
	return out
}
