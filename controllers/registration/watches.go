package registration

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	kvopv1 "github.com/kvop/kvop/api/v1"
)

// endpointRefIndex indexes Registrations by the KVEndpoint they use.
const endpointRefIndex = "spec.endpointRef.name"

// SetupWithManager registers the controller (skipNameValidation: several managers in one
// process, as in tests).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, skipNameValidation bool) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &kvopv1.Registration{}, endpointRefIndex,
		func(o client.Object) []string { return []string{o.(*kvopv1.Registration).Spec.EndpointRef.Name} },
	); err != nil {
		return err
	}
	byEndpoint := handler.EnqueueRequestsFromMapFunc(r.forEndpoint)
	return ctrl.NewControllerManagedBy(mgr).
		Named("registration").
		// Only spec changes: the status patch of every reconcile must not trigger another one.
		For(&kvopv1.Registration{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// The handler maps an update by the old and the new labels, so a pod that no longer
		// matches still reaches the Registration that registered it.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.forPod), builder.WithPredicates(podChanged())).
		Watches(&kvopv1.KVEndpoint{}, byEndpoint, builder.WithPredicates(endpointReadyChanged())).
		// A store opened, replaced or removed: what was written through the old connection must
		// be written again through the new one.
		WatchesRawSource(source.Channel(r.Pool.Subscribe(), byEndpoint)).
		WithOptions(controller.Options{
			SkipNameValidation: &skipNameValidation,
			// Store errors are retried with backoff, but never slower than the resync: an outage
			// that outlasted the TTL is repaired soon after the store answers again.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, maxResync),
		}).
		Complete(r)
}

// forPod returns the Registrations of the pod's namespace whose selector matches its labels
// (see selectorIndex).
func (r *Reconciler) forPod(_ context.Context, o client.Object) []reconcile.Request {
	return r.selectors.matching(o.GetNamespace(), labels.Set(o.GetLabels()))
}

// forEndpoint returns the Registrations that use the KVEndpoint.
func (r *Reconciler) forEndpoint(ctx context.Context, o client.Object) []reconcile.Request {
	regs := &kvopv1.RegistrationList{}
	if err := r.List(ctx, regs, client.InNamespace(o.GetNamespace()), client.MatchingFields{endpointRefIndex: o.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "listing Registrations for a KVEndpoint event")
		return nil
	}
	out := make([]reconcile.Request, 0, len(regs.Items))
	for i := range regs.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: regs.Items[i].Namespace, Name: regs.Items[i].Name}})
	}
	return out
}

// podChanged passes pod updates that can change an entry: labels (selection), readiness, IP,
// node, termination. Status churn of other kinds (container states, probes) is ignored.
func podChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		old, oldOK := e.ObjectOld.(*corev1.Pod)
		cur, curOK := e.ObjectNew.(*corev1.Pod)
		if !oldOK || !curOK {
			return true
		}
		return !labels.Equals(old.Labels, cur.Labels) ||
			registrable(old) != registrable(cur) ||
			old.Status.PodIP != cur.Status.PodIP ||
			old.Spec.NodeName != cur.Spec.NodeName ||
			(old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil)
	}}
}

// endpointReadyChanged passes KVEndpoint updates that flip its Ready condition (a store that
// answers again after an outage); creation and deletion always pass.
func endpointReadyChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		ready := func(o client.Object) metav1.ConditionStatus {
			ep, ok := o.(*kvopv1.KVEndpoint)
			if !ok {
				return metav1.ConditionUnknown
			}
			if c := apimeta.FindStatusCondition(ep.Status.Conditions, kvopv1.ConditionReady); c != nil {
				return c.Status
			}
			return metav1.ConditionUnknown
		}
		return ready(e.ObjectOld) != ready(e.ObjectNew)
	}}
}
