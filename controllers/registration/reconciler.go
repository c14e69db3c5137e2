// Package registration reconciles Registrations: it keeps exactly the discovery entries of the
// ready pods its selector matches in the endpoint's store, never deleting a live one.
//
// A reconcile resolves the endpoint's open store (storepool), computes the wanted entries from
// the pod cache, reads the entries of the service directory (the current service, and the one
// in status.service while a rename is being cleaned up), writes what is missing or different,
// and removes the entries this Registration owns but no longer wants. Entries carry an owner,
// ClusterID/UID, and the controller never writes over nor deletes an entry of another owner.
//
// Restart safety: the pod cache is synced before the first reconcile, so every Ready pod is
// wanted from the first reconcile on; without an open store nothing is read, written or
// deleted. After a restart the new connection writes every entry again (so that it keeps them
// alive) but deletes none that is still wanted.
//
// Metrics: kvop_registered_entries{namespace,registration}, the entries registered now.
package registration

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers/status"
	"github.com/kvop/kvop/controllers/storepool"
)

const (
	// defaultTTL applies when spec.ttl is unset (the API server defaults it; this covers
	// objects written before the default existed).
	defaultTTL = 30 * time.Second
	// maxResync bounds the periodic re-assertion: entries lost in the backend (an outage that
	// outlasted the TTL, an expired session) come back at most this long after the store answers.
	maxResync = 30 * time.Second
)

// Reconciler is the registration controller.
type Reconciler struct {
	client.Client
	Pool     *storepool.Pool
	Recorder events.EventRecorder
	// ClusterID marks the entries this install writes (see controllers.Options).
	ClusterID string

	skydns    skydnsCache   // the skydns format's etcd writers, one per open connection
	selectors selectorIndex // every Registration's pod selector, for forPod
}

// +kubebuilder:rbac:groups=kvop.io,resources=registrations,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=kvop.io,resources=registrations/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=kvop.io,resources=registrations/finalizers,verbs=update
// +kubebuilder:rbac:groups=kvop.io,resources=kvendpoints,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings the store's entries of one Registration in line with its ready pods.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	reg := &kvopv1.Registration{}
	if err := r.Get(ctx, req.NamespacedName, reg); err != nil {
		if apierrors.IsNotFound(err) {
			forgetMetrics(req.NamespacedName)
			r.selectors.drop(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.selectors.set(reg)
	ctx = logf.IntoContext(ctx, logf.FromContext(ctx).WithValues("registration", klog.KObj(reg)))
	if !reg.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, reg)
	}
	if controllerutil.AddFinalizer(reg, kvopv1.Finalizer) {
		// The finalizer goes on before the first write, so that no entry exists that deleting the
		// Registration would leave behind. The update changes no generation, so no event brings
		// us back: carry on in this reconcile.
		if err := r.Update(ctx, reg); err != nil {
			return ctrl.Result{}, err
		}
	}

	before := reg.DeepCopy()
	s := newSyncState(reg, r.owner(reg))
	err := runSteps(ctx, s, r.resolveStore, r.listWanted, r.readExisting, r.writeWanted, r.removeUnwanted)
	r.report(s, before, err)
	if perr := status.Patch(ctx, r.Client, reg, before); perr != nil && err == nil {
		err = fmt.Errorf("patching status: %w", perr)
	}
	return s.result(err)
}

// finalize removes every entry the Registration owns, then its finalizer.
func (r *Reconciler) finalize(ctx context.Context, reg *kvopv1.Registration) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(reg, kvopv1.Finalizer) {
		return ctrl.Result{}, nil
	}
	before := reg.DeepCopy()
	removed, err := r.removeAll(ctx, reg)
	if err != nil {
		// Retried with the controller's backoff; the finalizer stays until the entries are gone.
		msg := fmt.Sprintf("Removing this Registration's entries: %v", err)
		status.SetReady(&reg.Status.Conditions, reg.Generation, false, kvopv1.ReasonDeleting, msg)
		if perr := status.Patch(ctx, r.Client, reg, before); perr != nil {
			logf.FromContext(ctx).Error(perr, "patching status while deleting")
		}
		return ctrl.Result{}, err
	}
	if removed > 0 {
		r.Recorder.Eventf(reg, nil, "Normal", "Deregistered", "Delete",
			"Removed %d entries of service %s", removed, serviceOf(reg))
	}
	controllerutil.RemoveFinalizer(reg, kvopv1.Finalizer)
	if err := r.Update(ctx, reg); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	forgetMetrics(client.ObjectKeyFromObject(reg))
	return ctrl.Result{}, nil
}

// owner is what marks this Registration's entries: unique across installs sharing a backend.
func (r *Reconciler) owner(reg *kvopv1.Registration) string {
	return r.ClusterID + "/" + string(reg.UID)
}

// endpointKey names the KVEndpoint a Registration uses.
func endpointKey(reg *kvopv1.Registration) types.NamespacedName {
	return types.NamespacedName{Namespace: reg.Namespace, Name: reg.Spec.EndpointRef.Name}
}

// serviceOf is the service the Registration registers under now.
func serviceOf(reg *kvopv1.Registration) string {
	if reg.Spec.Service != "" {
		return reg.Spec.Service
	}
	return reg.Name
}

// ttlOf is the TTL of the entries.
func ttlOf(reg *kvopv1.Registration) time.Duration {
	if reg.Spec.TTL != nil && reg.Spec.TTL.Duration > 0 {
		return reg.Spec.TTL.Duration
	}
	return defaultTTL
}

// resyncAfter is how often the entries are re-asserted: often enough that an entry lost in the
// backend is back well within one TTL.
func resyncAfter(reg *kvopv1.Registration) time.Duration {
	return min(ttlOf(reg)/2, maxResync)
}

// serviceDirs are the services whose directories may hold this Registration's entries: the
// current one, and the one recorded in status while a rename is not cleaned up yet.
func serviceDirs(reg *kvopv1.Registration) []string {
	dirs := []string{serviceOf(reg)}
	if old := reg.Status.Service; old != "" && old != dirs[0] {
		dirs = append(dirs, old)
	}
	return dirs
}
