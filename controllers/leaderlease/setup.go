package leaderlease

import (
	"context"
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers/status"
)

// endpointIndex indexes LeaderLeases by the KVEndpoint they reference.
const endpointIndex = "spec.endpointRef.name"

// SetupWithManager registers the controller and its election runtime (skipNameValidation:
// several managers in one process, as in tests).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, skipNameValidation bool) error {
	r.rt = newRuntime()
	r.rt.releasePool = r.Pool.Hold() // the campaigns end before the stores close
	if err := mgr.Add(r.rt); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &kvopv1.LeaderLease{}, endpointIndex,
		func(o client.Object) []string { return []string{o.(*kvopv1.LeaderLease).Spec.EndpointRef.Name} }); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("leaderlease").
		// Spec changes (a deletion bumps the generation too) and status changes: a reconcile
		// that read the lease from a cache not yet holding our last status write finds nothing
		// to change and writes nothing, so the write's own event must bring one more reconcile,
		// which compares what the follower sees now with the status as written. Metadata
		// changes (labels, our finalizer) need none.
		For(&kvopv1.LeaderLease{}, builder.WithPredicates(predicate.Or[client.Object](
			predicate.GenerationChangedPredicate{}, statusChanged))).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.leasesInNamespace),
			builder.WithPredicates(podChanged)).
		Watches(&kvopv1.KVEndpoint{}, handler.EnqueueRequestsFromMapFunc(r.leasesOfEndpoint),
			builder.WithPredicates(endpointReadyChanged)).
		// A store opened, replaced or closed: restart or stop the elections on it.
		WatchesRawSource(source.Channel[client.Object](r.Pool.Subscribe(), handler.EnqueueRequestsFromMapFunc(r.leasesOfEndpoint))).
		// What the followers and campaigns saw: a new leader is reconciled at once.
		WatchesRawSource(source.Channel[client.Object](r.rt.events, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{SkipNameValidation: &skipNameValidation}).
		Complete(r)
}

// leasesInNamespace maps a pod to every LeaderLease of its namespace: which ones select it is
// for Reconcile to find out, and a namespace holds few leases.
func (r *Reconciler) leasesInNamespace(ctx context.Context, pod client.Object) []reconcile.Request {
	var leases kvopv1.LeaderLeaseList
	if err := r.List(ctx, &leases, client.InNamespace(pod.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing LeaderLeases for a pod")
		return nil
	}
	return requests(leases.Items)
}

// leasesOfEndpoint maps a KVEndpoint to the LeaderLeases that reference it.
func (r *Reconciler) leasesOfEndpoint(ctx context.Context, ep client.Object) []reconcile.Request {
	var leases kvopv1.LeaderLeaseList
	if err := r.List(ctx, &leases, client.InNamespace(ep.GetNamespace()),
		client.MatchingFields{endpointIndex: ep.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing LeaderLeases for a KVEndpoint")
		return nil
	}
	return requests(leases.Items)
}

func requests(leases []kvopv1.LeaderLease) []reconcile.Request {
	reqs := make([]reconcile.Request, len(leases))
	for i := range leases {
		reqs[i].NamespacedName = types.NamespacedName{Namespace: leases[i].Namespace, Name: leases[i].Name}
	}
	return reqs
}

// podChanged passes pod events that can change an election or its labels: readiness,
// termination, labels (the selector, our own label being removed by someone).
var podChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, cur := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
		return isCandidate(old) != isCandidate(cur) ||
			(old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) ||
			!maps.Equal(old.Labels, cur.Labels)
	},
}

// statusChanged passes LeaderLease updates whose status differs.
var statusChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, cur := e.ObjectOld.(*kvopv1.LeaderLease), e.ObjectNew.(*kvopv1.LeaderLease)
		return !equality.Semantic.DeepEqual(old.Status, cur.Status)
	},
}

// endpointReadyChanged passes KVEndpoint events where Ready changed (and creations and
// deletions, for EndpointNotFound).
var endpointReadyChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, cur := e.ObjectOld.(*kvopv1.KVEndpoint), e.ObjectNew.(*kvopv1.KVEndpoint)
		return status.IsReady(old.Status.Conditions) != status.IsReady(cur.Status.Conditions)
	},
}
