package kvendpoint

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers/status"
)

// Retry bounds for an endpoint that is not Ready for a reason that may pass by itself.
const minRetry = time.Second

// maxMessage keeps a condition message and an event note within what the API accepts (an
// events.k8s.io note is at most 1kB).
const maxMessage = 1000

// setStatus writes what the reconcile found into the endpoint's status.
func setStatus(endpoint *kvopv1.KVEndpoint, s *state) {
	st := &endpoint.Status
	st.ObservedGeneration = endpoint.Generation
	if !s.contacted.IsZero() {
		t := metav1.NewTime(s.contacted)
		st.LastProbeTime = &t
	}
	if s.verdict.ready {
		st.ProbeLatency = &metav1.Duration{Duration: s.verdict.latency.Round(time.Microsecond)}
	}
	status.SetReady(&st.Conditions, endpoint.Generation, s.verdict.ready, s.verdict.reason, truncate(s.verdict.message))
}

// announceTransition emits an event when Ready or its reason changed: a probe that finds what
// the previous one found says nothing new.
func (r *Reconciler) announceTransition(before, after *kvopv1.KVEndpoint) {
	now := apimeta.FindStatusCondition(after.Status.Conditions, kvopv1.ConditionReady)
	if now == nil {
		return
	}
	was := apimeta.FindStatusCondition(before.Status.Conditions, kvopv1.ConditionReady)
	if was != nil && was.Status == now.Status && was.Reason == now.Reason {
		return
	}
	eventType := corev1.EventTypeWarning
	if now.Status == metav1.ConditionTrue {
		eventType = corev1.EventTypeNormal
	}
	r.Recorder.Eventf(after, nil, eventType, now.Reason, "Connect", "%s", now.Message)
}

// requeueAfter is when to look at the endpoint again without being told: the next periodic
// probe when Ready; with a backoff that doubles (from minRetry up to the probe interval) while a
// backend stays unreachable or refuses us; never for a bad spec or Secret, whose fix we are
// told of by the watches.
func (r *Reconciler) requeueAfter(endpoint *kvopv1.KVEndpoint, v verdict) time.Duration {
	interval := r.ProbeInterval
	if interval <= 0 {
		interval = DefaultProbeInterval
	}
	switch {
	case v.ready:
		return interval
	case !v.retry:
		return 0
	}
	// Derived from the status rather than a counter in memory, so that a restart keeps it:
	// waiting as long as the endpoint has been failing doubles the wait each time.
	failingFor := time.Duration(0)
	if c := apimeta.FindStatusCondition(endpoint.Status.Conditions, kvopv1.ConditionReady); c != nil {
		failingFor = time.Since(c.LastTransitionTime.Time)
	}
	return min(max(failingFor, minRetry), interval)
}

func truncate(msg string) string {
	if len(msg) <= maxMessage {
		return msg
	}
	return msg[:maxMessage-3] + "..."
}
