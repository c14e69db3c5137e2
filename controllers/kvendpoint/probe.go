package kvendpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers/status"
	"github.com/kvop/kvop/pkg/kvstore"
)

// probeKey is read (below the endpoint prefix) to check the backend answers; it need not exist.
const probeKey = "kvop-probe"

// Event reasons besides the Ready reasons.
const (
	EventStoreOpened        = "StoreOpened"
	EventInsecureSkipVerify = "InsecureSkipVerify"
)

// openStore opens the endpoint's store, or keeps the open one when nothing it is built from
// changed. A store that fails to open leaves the previous one in the pool (see Pool.Ensure).
func (r *Reconciler) openStore(ctx context.Context, s *state) error {
	c := s.conn
	key := types.NamespacedName{Namespace: s.endpoint.Namespace, Name: s.endpoint.Name}
	attempt := time.Now()
	store, opened, err := r.Pool.Ensure(ctx, key, c.backend, c.prefix, c.hash, c.open)
	if err != nil {
		s.contacted = attempt
		return &notReady{reason: reasonFor(err), retry: true,
			message: fmt.Sprintf("cannot open %s: %s", c.where(), c.redact(err.Error()))}
	}
	s.store = store
	if opened {
		// The logger already names the endpoint (controller-runtime adds it to the context).
		log.FromContext(ctx).Info("opened store", "backend", c.backend, "addresses", c.addrs,
			"connection", store.Generation)
		r.Recorder.Eventf(s.endpoint, nil, corev1.EventTypeNormal, EventStoreOpened, "Open",
			"opened %s (connection %d)", c.where(), store.Generation)
		if c.insecure {
			r.Recorder.Eventf(s.endpoint, nil, corev1.EventTypeWarning, EventInsecureSkipVerify, "Open",
				"opened %s without verifying the server certificate (spec.tls.insecureSkipVerify): use it only for tests", c.where())
		}
	}
	return nil
}

// probeStore reads a key below the prefix and times the answer; "not found" is an answer.
func (r *Reconciler) probeStore(ctx context.Context, s *state) error {
	ctx, cancel := context.WithTimeout(ctx, s.conn.timeout()+openGrace)
	defer cancel()
	start := time.Now()
	_, err := s.store.Get(ctx, s.store.Key(probeKey))
	latency := time.Since(start)
	s.contacted = start
	if err != nil && !errors.Is(err, kvstore.ErrKeyNotFound) {
		r.replaceAfterFailure(s)
		return &notReady{reason: reasonFor(err), retry: true,
			message: fmt.Sprintf("%s did not answer the probe: %s", s.conn.where(), s.conn.redact(err.Error()))}
	}
	s.verdict = verdict{ready: true, reason: kvopv1.ReasonConnected, latency: latency,
		message: fmt.Sprintf("%s answered in %s", s.conn.where(), roundLatency(latency))}
	return nil
}

// replaceAfterFailure has the next reconcile open a new connection, because the probe failed:
// a client may never recover by itself, or come back with a stale view (see
// storepool.Pool.MarkStale). A fresh connection re-reads everything, and the controllers move
// onto it as after a restart of kvop. Until a new one opens (retried with the usual backoff,
// e.g. while the backend is down) the old connection stays.
func (r *Reconciler) replaceAfterFailure(s *state) {
	r.Pool.MarkStale(types.NamespacedName{Namespace: s.endpoint.Namespace, Name: s.endpoint.Name}, s.store)
}

// reasonFor maps a store error to a Ready reason.
func reasonFor(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return kvopv1.ReasonUnreachable // our own bound, should the store not apply its timeout
	}
	if reason := status.ReasonFor(err); reason != kvopv1.ReasonStoreError {
		return reason
	}
	return kvopv1.ReasonProbeFailed
}

// roundLatency keeps two or three significant digits: "1.2ms", "345µs", "1.234s".
func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// verdict is the Ready condition a reconcile arrives at.
type verdict struct {
	ready   bool
	reason  string
	message string
	// retry: the failure may go away without any change we would be told of (a backend
	// coming back), so look again with backoff.
	retry   bool
	latency time.Duration // of the successful probe
}

// from takes the verdict of a step's *notReady error and reports whether err was one.
func (v *verdict) from(err error) bool {
	var nr *notReady
	if !errors.As(err, &nr) {
		return false
	}
	*v = verdict{reason: nr.reason, message: nr.message, retry: nr.retry}
	return true
}

// notReady is a step's finding that the endpoint cannot be Ready, and why.
type notReady struct {
	reason, message string
	retry           bool
}

func (e *notReady) Error() string { return e.reason + ": " + e.message }
