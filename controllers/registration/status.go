package registration

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers/status"
)

// ReasonEntryConflict: a ready pod's entry key is held by an entry of another owner (another
// cluster sharing the backend, or another Registration of the same service), which kvop never
// overwrites.
const ReasonEntryConflict = "EntryConflict"

// Event reasons besides the condition reasons.
const (
	eventRegistered   = kvopv1.ReasonRegistered
	eventDeregistered = "Deregistered"
	eventPodSkipped   = "PodSkipped"
)

// maxListed bounds the pods named in a message (events.k8s.io notes are at most 1 kB).
const maxListed = 5

// report sets the status from what the reconcile did, updates the gauge, and records events:
// one for the changes of this reconcile (not one per pod), and warnings when a problem appears
// (judged against the status as fetched, so that a retry does not repeat them).
func (r *Reconciler) report(s *syncState, before *kvopv1.Registration, err error) {
	reg := s.reg
	reg.Status.ObservedGeneration = reg.Generation
	var b *blocked
	switch {
	case err == nil:
		reg.Status.Endpoints = int32(s.registered)
		reg.Status.Service = s.service // the old service directory is clean: forget it
		msg := fmt.Sprintf("%d entries registered under service %s", s.registered, s.service)
		if len(s.skipped) > 0 {
			msg += "; skipped pods: " + listed(s.skipped)
		}
		if len(s.conflicts) > 0 {
			status.SetReady(&reg.Status.Conditions, reg.Generation, false, ReasonEntryConflict,
				fmt.Sprintf("Entries of another owner hold %s; %s", listed(s.conflicts), msg))
		} else {
			status.SetReady(&reg.Status.Conditions, reg.Generation, true, kvopv1.ReasonRegistered, capitalize(msg))
		}
	case errors.As(err, &b):
		if b.reason == kvopv1.ReasonEndpointNotFound {
			// Its store is closed: whatever was written expires by TTL.
			reg.Status.Endpoints = 0
		}
		status.SetReady(&reg.Status.Conditions, reg.Generation, false, b.reason, b.message)
	default:
		// What is in the store is unknown: the count stays as last seen.
		status.SetReady(&reg.Status.Conditions, reg.Generation, false, status.ReasonFor(err), capitalize(err.Error()))
	}
	setMetrics(client.ObjectKeyFromObject(reg), reg.Status.Endpoints)
	r.recordEvents(s, before)
}

func (r *Reconciler) recordEvents(s *syncState, before *kvopv1.Registration) {
	reg := s.reg
	if changed := s.added + s.updated + s.removed; changed > 0 {
		reason := eventRegistered
		if s.added+s.updated == 0 {
			reason = eventDeregistered
		}
		r.Recorder.Eventf(reg, nil, corev1.EventTypeNormal, reason, "Sync",
			"Service %s: %d added, %d updated, %d removed; %d entries registered",
			s.service, s.added, s.updated, s.removed, s.registered)
	}
	prev := apimeta.FindStatusCondition(before.Status.Conditions, kvopv1.ConditionReady)
	now := apimeta.FindStatusCondition(reg.Status.Conditions, kvopv1.ConditionReady)
	if now != nil && now.Status != metav1.ConditionTrue &&
		(prev == nil || prev.Status != now.Status || prev.Reason != now.Reason) {
		r.Recorder.Eventf(reg, nil, corev1.EventTypeWarning, now.Reason, "Sync", "%s", now.Message)
	}
	if len(s.skipped) > 0 {
		note := listed(s.skipped)
		if prev == nil || !strings.Contains(prev.Message, note) {
			r.Recorder.Eventf(reg, nil, corev1.EventTypeWarning, eventPodSkipped, "Sync",
				"Ready pods left out of service %s: %s", s.service, note)
		}
	}
}

// listed joins the first few items and counts the rest.
func listed(items []string) string {
	if len(items) <= maxListed {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:maxListed], ", "), len(items)-maxListed)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
