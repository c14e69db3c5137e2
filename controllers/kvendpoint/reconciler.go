// Package kvendpoint reconciles KVEndpoints: it opens one store per endpoint in the shared pool
// (replaced when the spec or a referenced Secret changes, closed when the endpoint is deleted),
// probes it periodically and on change, and reports Ready with a reason.
//
// A reconcile runs three steps in order — read the connection settings (spec and Secrets), open
// the store (storepool.Pool.Ensure, which reopens only when their digest changed), probe it —
// and the first step that finds the endpoint unusable ends the chain with the reason it found.
// The status is patched once, at the end.
//
// Metrics: kvop_endpoint_ready{namespace,name,backend} is 1 while the endpoint's last probe
// reached its backend and 0 otherwise; the series goes when the endpoint is deleted.
//
// Events: a Normal or Warning event named after the Ready reason when Ready or its reason
// changes (not on every probe), Normal StoreOpened when a store is (re)opened, and Warning
// InsecureSkipVerify each time a store is opened without verifying the server certificate.
// Secret values never reach the status, events or logs: only Secret names and key names do.
package kvendpoint

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers/status"
	"github.com/kvop/kvop/controllers/storepool"
)

// DefaultProbeInterval is used when Reconciler.ProbeInterval is not set.
const DefaultProbeInterval = 30 * time.Second

// Reconciler is the kvendpoint controller.
type Reconciler struct {
	client.Client
	Pool     *storepool.Pool
	Recorder events.EventRecorder
	// ProbeInterval is how often the store is probed.
	ProbeInterval time.Duration
}

// state is what one reconcile learns, step by step.
type state struct {
	endpoint *kvopv1.KVEndpoint
	conn     *connection      // set by readConnection
	store    *storepool.Store // set by openStore
	// contacted is when the backend was last asked anything (open or probe), zero if never.
	contacted time.Time
	verdict   verdict
}

// step is one stage of a reconcile. It returns a *notReady when the endpoint cannot be Ready
// (the chain stops and the status says why) and any other error for a failure to retry (an
// API call that failed).
type step func(ctx context.Context, s *state) error

// +kubebuilder:rbac:groups=kvop.io,resources=kvendpoints,verbs=get;list;watch
// +kubebuilder:rbac:groups=kvop.io,resources=kvendpoints/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one KVEndpoint's store in line with its spec and Secrets and reports on it.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	endpoint := &kvopv1.KVEndpoint{}
	if err := r.Get(ctx, req.NamespacedName, endpoint); err != nil {
		if apierrors.IsNotFound(err) {
			// No finalizer: the pool is in memory, so noticing the deletion here is enough.
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := endpoint.DeepCopy()

	s := &state{endpoint: endpoint}
	for _, run := range []step{r.readConnection, r.openStore, r.probeStore} {
		if err := run(ctx, s); err != nil {
			if !s.verdict.from(err) {
				return ctrl.Result{}, err
			}
			break
		}
	}

	setStatus(endpoint, s)
	if err := status.Patch(ctx, r.Client, endpoint, before); err != nil {
		return ctrl.Result{}, err
	}
	// Announce only what was written: a failed patch is retried and would announce it twice.
	r.announceTransition(before, endpoint)
	setReadyMetric(endpoint, s.verdict.ready)
	return ctrl.Result{RequeueAfter: r.requeueAfter(endpoint, s.verdict)}, nil
}

// forget closes the store of a deleted endpoint and drops its metric series.
func (r *Reconciler) forget(endpoint types.NamespacedName) {
	r.Pool.Remove(endpoint)
	deleteReadyMetric(endpoint)
}

// SetupWithManager registers the controller (skipNameValidation: several managers in one
// process, as in tests).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, skipNameValidation bool) error {
	if r.ProbeInterval <= 0 {
		r.ProbeInterval = DefaultProbeInterval
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &kvopv1.KVEndpoint{},
		secretIndex, referencedSecrets); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("kvendpoint").
		// Only spec changes: our own status patches must not wake us (the periodic requeue
		// probes), and deletions pass this predicate.
		For(&kvopv1.KVEndpoint{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Metadata only: a change of a Secret's data moves its resourceVersion, which is all
		// the watch needs; the data is read uncached when a KVEndpoint uses it.
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.endpointsForSecret)).
		WithOptions(controller.Options{
			SkipNameValidation: &skipNameValidation,
			// Opening an unreachable backend takes its whole connection timeout; other
			// endpoints must not wait in line behind it.
			MaxConcurrentReconciles: 4,
		}).
		Complete(r)
}
