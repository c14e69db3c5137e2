package registration

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers/storepool"
)

// syncState is what one reconcile learns and does, step by step. It lives for one reconcile
// only: nothing is carried over in memory (the store's Written record aside, which belongs to
// the connection).
type syncState struct {
	reg     *kvopv1.Registration
	owner   string
	service string
	ttl     time.Duration

	store  *storepool.Store // nil until resolveStore found one
	layout layout           // the format's places and encodings on store

	wanted  map[string]wantedEntry // by normalised key
	skipped []string               // pods that match but cannot be registered, and why

	existing map[string]storedEntry // entries (of any owner) in the service directories
	read     bool                   // existing holds the store's state

	conflicts  []string // wanted keys held by an entry of another owner
	registered int      // wanted entries known to be in the store with our value
	added      int      // entries that were absent
	updated    int      // entries whose value changed
	reasserted int      // same value, written again so that this connection keeps it alive
	removed    int      // our entries deleted because no pod wants them
}

// storedEntry is an entry read from the store.
type storedEntry struct {
	value string
	ours  bool
}

func newSyncState(reg *kvopv1.Registration, owner string) *syncState {
	return &syncState{reg: reg, owner: owner, service: serviceOf(reg), ttl: ttlOf(reg)}
}

// blocked stops a reconcile that cannot act yet (no endpoint, no store, a spec it cannot
// use). It is no failure: the Ready condition says why, and a watch or the resync brings the
// reconcile back.
type blocked struct{ reason, message string }

func (b *blocked) Error() string { return b.message }

// step is one stage of a reconcile; an error stops the ones after it.
type step func(ctx context.Context, s *syncState) error

func runSteps(ctx context.Context, s *syncState, steps ...step) error {
	for _, st := range steps {
		if err := st(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// result turns the outcome into a requeue: periodic re-assertion when all is well or blocked,
// the controller's (capped) backoff after an error.
func (s *syncState) result(err error) (ctrl.Result, error) {
	var b *blocked
	if err != nil && !errors.As(err, &b) {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: resyncAfter(s.reg)}, nil
}

// resolveStore finds the endpoint's open store. Without one nothing may be read, written or
// deleted: what is in the backend is unknown.
func (r *Reconciler) resolveStore(ctx context.Context, s *syncState) error {
	key := endpointKey(s.reg)
	ep := &kvopv1.KVEndpoint{}
	if err := r.Get(ctx, key, ep); err != nil {
		if apierrors.IsNotFound(err) {
			return &blocked{kvopv1.ReasonEndpointNotFound, fmt.Sprintf("KVEndpoint %q does not exist", key.Name)}
		}
		return err
	}
	if b := formatSupported(s.reg, ep.Spec.Backend); b != nil {
		return b
	}
	s.store = r.Pool.Get(key)
	if s.store == nil {
		msg := fmt.Sprintf("KVEndpoint %q has no open connection", key.Name)
		for _, c := range ep.Status.Conditions {
			if c.Type == kvopv1.ConditionReady && c.Status != metav1.ConditionTrue {
				msg += fmt.Sprintf(" (%s: %s)", c.Reason, c.Message)
			}
		}
		return &blocked{kvopv1.ReasonEndpointNotReady, msg}
	}
	l, err := r.layoutFor(s.reg, s.store)
	if err != nil {
		return err
	}
	s.layout = l
	return nil
}

// listWanted computes the entries of the matching ready pods from the cache.
func (r *Reconciler) listWanted(ctx context.Context, s *syncState) error {
	selector, err := metav1.LabelSelectorAsSelector(&s.reg.Spec.Selector)
	if err != nil {
		return &blocked{kvopv1.ReasonInvalidSpec, fmt.Sprintf("spec.selector: %v", err)}
	}
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(s.reg.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	s.wanted, s.skipped = wantedFor(s.reg, pods.Items, s.owner, s.layout)
	return nil
}

// readExisting reads every entry of the service directories, of any owner: ours to compare
// and clean up, the others' to stay off their keys.
func (r *Reconciler) readExisting(ctx context.Context, s *syncState) error {
	s.existing = map[string]storedEntry{}
	for _, service := range serviceDirs(s.reg) {
		entries, err := s.layout.read(ctx, service, s.owner)
		if err != nil {
			return fmt.Errorf("reading service %s: %w", service, err)
		}
		// Values that are no entries were left out: not ours to judge.
		maps.Copy(s.existing, entries)
	}
	s.read = true
	return nil
}

// writeWanted writes each wanted entry that is absent, different, or not kept alive by this
// connection (a new connection, e.g. after a restart). An entry this connection wrote and
// that is still there is left alone: rewriting it would wake every watcher for nothing.
func (r *Reconciler) writeWanted(ctx context.Context, s *syncState) error {
	for _, key := range sortedKeys(s.wanted) {
		w := s.wanted[key]
		cur, present := s.existing[key]
		switch {
		case present && !cur.ours:
			// Another cluster or Registration holds this address under the same service: it is
			// theirs, never overwritten.
			s.conflicts = append(s.conflicts, fmt.Sprintf("%s (pod %s)", w.entry.Endpoint(), w.entry.Pod))
			continue
		case present && cur.value == w.value && s.store.Written(key, w.value):
			s.registered++
			continue
		}
		if err := s.layout.write(ctx, key, w, s.ttl); err != nil {
			return fmt.Errorf("registering %s: %w", w.entry.Endpoint(), err)
		}
		s.store.MarkWritten(key, w.value)
		s.registered++
		switch {
		case !present:
			s.added++
		case cur.value != w.value:
			s.updated++
		default:
			s.reasserted++
		}
	}
	if s.reasserted > 0 {
		logf.FromContext(ctx).V(1).Info("re-asserted entries through a new connection", "count", s.reasserted)
	}
	return nil
}

// removeUnwanted deletes our entries that no ready pod wants (any more): pods gone, not Ready,
// deselected, or entries left by a previous run or service name. Deletion is owner-checked and
// conditional on the value read, so a concurrent writer's entry survives.
func (r *Reconciler) removeUnwanted(ctx context.Context, s *syncState) error {
	for _, key := range sortedKeys(s.existing) {
		if _, want := s.wanted[key]; want || !s.existing[key].ours {
			continue
		}
		deleted, err := s.layout.removeOwned(ctx, key, s.owner)
		if err != nil {
			return fmt.Errorf("deregistering %s: %w", key, err)
		}
		s.store.MarkWritten(key, "")
		if deleted {
			s.removed++
		}
	}
	return nil
}

// removeAll deletes every entry the Registration owns (it is being deleted) and reports how
// many. Without a store it waits, unless the endpoint is gone: then its store was closed, the
// keep-alives stopped, and the entries expire within their TTL.
func (r *Reconciler) removeAll(ctx context.Context, reg *kvopv1.Registration) (int, error) {
	key := endpointKey(reg)
	store := r.Pool.Get(key)
	if store == nil {
		ep := &kvopv1.KVEndpoint{}
		err := r.Get(ctx, key, ep)
		switch {
		case apierrors.IsNotFound(err) || (err == nil && !ep.DeletionTimestamp.IsZero()):
			logf.FromContext(ctx).Info("KVEndpoint is gone: leaving the entries to expire by their TTL", "endpoint", key.Name)
			return 0, nil
		case err != nil:
			return 0, err
		}
		return 0, fmt.Errorf("KVEndpoint %q has no open connection yet; delete the KVEndpoint to let the entries expire instead", key.Name)
	}
	s := newSyncState(reg, r.owner(reg))
	l, err := r.layoutFor(reg, store)
	var b *blocked
	if errors.As(err, &b) {
		return 0, nil // a format this store cannot serve, or a spec it cannot use: nothing was written
	}
	if err != nil {
		return 0, err
	}
	s.store, s.layout = store, l
	s.wanted = map[string]wantedEntry{}
	if err := runSteps(ctx, s, r.readExisting, r.removeUnwanted); err != nil {
		return s.removed, err
	}
	return s.removed, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
