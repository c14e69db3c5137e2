package leaderlease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers/status"
	"github.com/kvop/kvop/controllers/storepool"
)

const (
	// defaultTTL applies when spec.ttl is unset (the API server defaults it too).
	defaultTTL = 15 * time.Second
	// storeRetry re-checks a lease whose endpoint has no store; the pool's notification
	// usually comes first.
	storeRetry = 30 * time.Second
	// errorRetry re-checks a lease whose store reads fail, so that failed campaigns restart.
	errorRetry = 5 * time.Second
	// conflictRetry re-runs a reconcile whose status patch met a newer status.
	conflictRetry = 50 * time.Millisecond
)

// Reconciler is the leaderlease controller.
type Reconciler struct {
	client.Client
	Pool     *storepool.Pool
	Recorder events.EventRecorder

	rt *runtime // set by SetupWithManager
}

// pass is what one reconcile of a lease learns, step by step.
type pass struct {
	lease *kvopv1.LeaderLease
	now   time.Time
	rtctx context.Context // the runtime's: done once the manager stops

	store    *storepool.Store
	managed  bool
	pods     []corev1.Pod // matching the candidate selector (managed)
	desired  []string     // names of the Ready, not terminating ones, sorted
	election *election

	obs          *observation // nil when no election runs
	requeueAfter time.Duration
}

// requeue asks for a reconcile after d at the latest (d <= 0: no need).
func (p *pass) requeue(d time.Duration) {
	if d > 0 && (p.requeueAfter == 0 || d < p.requeueAfter) {
		p.requeueAfter = d
	}
}

// step is one stage of a reconcile; stop ends the reconcile early (the status is still
// written).
type step func(ctx context.Context, p *pass) (stop bool, err error)

// +kubebuilder:rbac:groups=kvop.io,resources=leaderleases,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=kvop.io,resources=leaderleases/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=kvop.io,resources=leaderleases/finalizers,verbs=update
// +kubebuilder:rbac:groups=kvop.io,resources=kvendpoints,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one LeaderLease's election, pod labels and status in line with its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rtctx, err := r.rt.context(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	lease := &kvopv1.LeaderLease{}
	if err := r.Get(ctx, req.NamespacedName, lease); err != nil {
		if apierrors.IsNotFound(err) {
			r.rt.stop(req.NamespacedName) // gone without the finalizer having run (forced)
			forgetMetrics(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !lease.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, lease)
	}
	if !controllerutil.ContainsFinalizer(lease, kvopv1.Finalizer) {
		before := lease.DeepCopy()
		controllerutil.AddFinalizer(lease, kvopv1.Finalizer)
		if err := r.Patch(ctx, lease, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, err
		}
	}

	before := lease.DeepCopy()
	p := &pass{lease: lease, now: time.Now(), rtctx: rtctx}
	var stepErr error
	for _, s := range []step{r.resolveStore, r.listCandidates, r.runElection, r.observe, r.labelCandidates} {
		stop, err := s(ctx, p)
		if err != nil {
			stepErr = err
			break
		}
		if stop {
			break
		}
	}
	// The manager is stopping: the follower may be reporting the release of our own
	// campaigns, and writing "no leader" now would defeat the restart rule.
	if rtctx.Err() != nil {
		return ctrl.Result{}, nil
	}
	var recorded *tenure
	if p.obs != nil {
		recorded = applyObservation(&lease.Status, lease.Generation, *p.obs, metav1.NewTime(p.now))
	}
	lease.Status.ObservedGeneration = lease.Generation
	if err := r.patchStatus(ctx, before, lease); err != nil {
		if apierrors.IsConflict(err) && stepErr == nil {
			// The cache has not caught up with our previous status write yet; come back
			// shortly (that write's own event brings a reconcile too, see SetupWithManager).
			ctrl.LoggerFrom(ctx).V(1).Info("status changed since it was read; retrying")
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, errors.Join(stepErr, err)
	}
	if recorded != nil {
		r.recordTenure(ctx, lease, p, recorded)
	}
	return ctrl.Result{RequeueAfter: p.requeueAfter}, stepErr
}

// resolveStore finds the endpoint's open store; without one the election stops.
func (r *Reconciler) resolveStore(ctx context.Context, p *pass) (bool, error) {
	lease := p.lease
	ref := types.NamespacedName{Namespace: lease.Namespace, Name: lease.Spec.EndpointRef.Name}
	if p.store = r.Pool.Get(ref); p.store != nil {
		return false, nil
	}
	r.rt.stop(client.ObjectKeyFromObject(lease)) // its store is closed: the campaigns cannot hold
	p.requeue(storeRetry)
	var ep kvopv1.KVEndpoint
	switch err := r.Get(ctx, ref, &ep); {
	case apierrors.IsNotFound(err):
		status.SetReady(&lease.Status.Conditions, lease.Generation, false, kvopv1.ReasonEndpointNotFound,
			fmt.Sprintf("KVEndpoint %s not found", ref.Name))
	case err != nil:
		return true, err
	default:
		msg := fmt.Sprintf("KVEndpoint %s has no open connection to its backend", ref.Name)
		if c := apimeta.FindStatusCondition(ep.Status.Conditions, kvopv1.ConditionReady); c != nil && c.Status != metav1.ConditionTrue {
			msg += ": " + c.Message
		}
		status.SetReady(&lease.Status.Conditions, lease.Generation, false, kvopv1.ReasonEndpointNotReady, msg)
	}
	return true, nil
}

// listCandidates lists the pods the selector matches (managed mode) and the Ready ones.
func (r *Reconciler) listCandidates(ctx context.Context, p *pass) (bool, error) {
	lease := p.lease
	if lease.Spec.Candidates == nil {
		return false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(&lease.Spec.Candidates.Selector)
	if err != nil {
		r.rt.stop(client.ObjectKeyFromObject(lease))
		status.SetReady(&lease.Status.Conditions, lease.Generation, false, kvopv1.ReasonInvalidSpec,
			fmt.Sprintf("spec.candidates.selector: %v", err))
		return true, nil
	}
	pods, err := r.candidatePods(ctx, lease.Namespace, sel)
	if err != nil {
		return true, err
	}
	p.managed, p.pods = true, pods
	for i := range pods {
		if isCandidate(&pods[i]) {
			p.desired = append(p.desired, pods[i].Name)
		}
	}
	slices.Sort(p.desired)
	return false, nil
}

func (r *Reconciler) candidatePods(ctx context.Context, namespace string, sel labels.Selector) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("listing candidate pods: %w", err)
	}
	return pods.Items, nil
}

// runElection (re)starts the election when needed and runs one campaign per Ready candidate.
func (r *Reconciler) runElection(ctx context.Context, p *pass) (bool, error) {
	lease := p.lease
	nn := client.ObjectKeyFromObject(lease)
	params := electionParams{store: p.store, key: p.store.Key(electionKey(lease)), ttl: leaseTTL(lease)}
	e := r.rt.get(nn)
	if e == nil || !params.same(e) {
		// The restart rule: the pod status names as leader campaigns alone first.
		holdFor := ""
		if p.managed && slices.Contains(p.desired, lease.Status.Leader) {
			holdFor = lease.Status.Leader
		}
		e = r.rt.start(p.rtctx, nn, params, holdFor, p.now)
		ctrl.LoggerFrom(ctx).Info("election started", "key", params.key, "generation", params.store.Generation,
			"managed", p.managed, "firstCandidate", holdFor)
	}
	p.election = e
	p.requeue(e.syncCampaigns(p.desired, p.now))
	return false, nil
}

// observe reads what the election's follower knows.
func (r *Reconciler) observe(_ context.Context, p *pass) (bool, error) {
	e := p.election
	synced, leader, term, followErr, campaignErr := e.observed()
	if !p.managed {
		campaignErr = nil // left over from managed mode
	}
	p.obs = &observation{key: e.key, managed: p.managed, synced: synced, leader: leader, term: term,
		err: followErr, campaignErr: campaignErr, candidates: len(p.desired), holdFor: e.holdFor}
	if followErr != nil || campaignErr != nil {
		p.requeue(errorRetry) // restarts campaigns that failed for good
	}
	return false, nil
}

// labelCandidates moves the leader label to the leader pod (managed mode), after taking it off
// the pods kvop no longer manages; observe mode only takes off what managed mode set.
func (r *Reconciler) labelCandidates(ctx context.Context, p *pass) (bool, error) {
	if p.rtctx.Err() != nil {
		return false, nil
	}
	if !p.managed {
		if err := r.unlabelStale(ctx, p.lease, nil, ""); err != nil {
			return false, err
		}
		recordLabelled(&p.lease.Status, "", nil)
		return false, nil
	}
	if !p.obs.synced {
		return false, nil // the leader is not known (yet / any more)
	}
	label := leaderLabel(p.lease)
	if err := r.unlabelStale(ctx, p.lease, p.pods, label); err != nil {
		return false, err
	}
	if err := r.labelPods(ctx, p.pods, label, p.obs.leader); err != nil {
		return false, err
	}
	recordLabelled(&p.lease.Status, label, p.pods)
	return false, nil
}

// finalize stops the election (every campaign releases the key), removes the leader label from
// the candidate pods and from those status lists as labelled, and then the finalizer.
func (r *Reconciler) finalize(ctx context.Context, lease *kvopv1.LeaderLease) error {
	nn := client.ObjectKeyFromObject(lease)
	stopped := r.rt.stop(nn)
	if !controllerutil.ContainsFinalizer(lease, kvopv1.Finalizer) {
		return nil
	}
	select {
	case <-stopped:
	case <-ctx.Done():
		return ctx.Err()
	}
	label := leaderLabel(lease)
	var pods []corev1.Pod // the candidates, whose label goes first
	if lease.Spec.Candidates != nil {
		if sel, err := metav1.LabelSelectorAsSelector(&lease.Spec.Candidates.Selector); err == nil {
			if pods, err = r.candidatePods(ctx, lease.Namespace, sel); err != nil {
				return err
			}
			for i := range pods {
				if hasLabel(&pods[i], label) {
					if err := r.setPodLabel(ctx, &pods[i], label, ""); err != nil {
						return err
					}
				}
			}
		}
	}
	// Then the pods status lists that are not among them: they left the selector, or carry an
	// earlier label key.
	if err := r.unlabelStale(ctx, lease, pods, label); err != nil {
		return err
	}
	forgetMetrics(nn)
	before := lease.DeepCopy()
	controllerutil.RemoveFinalizer(lease, kvopv1.Finalizer)
	return client.IgnoreNotFound(r.Patch(ctx, lease, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})))
}

// patchStatus writes the status once per reconcile. The optimistic lock matters: transitions
// are counted from the status read, so a status read from a stale cache must not be written.
func (r *Reconciler) patchStatus(ctx context.Context, before, lease *kvopv1.LeaderLease) error {
	if equality.Semantic.DeepEqual(before.Status, lease.Status) {
		return nil
	}
	return r.Status().Patch(ctx, lease, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}

// recordTenure reports a new leadership that status recorded: event, metric and log.
func (r *Reconciler) recordTenure(ctx context.Context, lease *kvopv1.LeaderLease, p *pass, t *tenure) {
	var related *corev1.Pod
	for i := range p.pods {
		if p.pods[i].Name == t.leader {
			related = &p.pods[i]
		}
	}
	note := t.eventNote()
	if related != nil {
		r.Recorder.Eventf(lease, related, corev1.EventTypeNormal, kvopv1.ReasonLeaderElected, "Elect", note)
	} else {
		r.Recorder.Eventf(lease, nil, corev1.EventTypeNormal, kvopv1.ReasonLeaderElected, "Elect", note)
	}
	if t.transition {
		leaderTransitions.WithLabelValues(lease.Namespace, lease.Name).Inc()
	}
	ctrl.LoggerFrom(ctx).Info("leader elected", "lease", klog.KObj(lease), "leader", t.leader, "previous", t.previous, "term", t.term)
}

// electionKey is the key below the endpoint prefix.
func electionKey(lease *kvopv1.LeaderLease) string {
	if lease.Spec.Key != "" {
		return lease.Spec.Key
	}
	return "leases/" + lease.Namespace + "/" + lease.Name
}

func leaseTTL(lease *kvopv1.LeaderLease) time.Duration {
	if lease.Spec.TTL == nil || lease.Spec.TTL.Duration <= 0 {
		return defaultTTL
	}
	return lease.Spec.TTL.Duration
}

func leaderLabel(lease *kvopv1.LeaderLease) string {
	if lease.Spec.LeaderLabel == "" {
		return kvopv1.DefaultLeaderLabel
	}
	return lease.Spec.LeaderLabel
}
