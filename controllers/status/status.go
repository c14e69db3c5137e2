// Package status holds what kvop's controllers share about status: the Ready condition, the one
// status patch per reconcile, and the mapping from store errors to condition reasons.
package status

import (
	"context"
	"errors"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/pkg/kvstore"
)

// SetReady sets the Ready condition for the spec generation the status describes. The
// transition time changes only when the status does (apimachinery's SetStatusCondition).
func SetReady(conditions *[]metav1.Condition, generation int64, ready bool, reason, message string) {
	s := metav1.ConditionFalse
	if ready {
		s = metav1.ConditionTrue
	}
	apimeta.SetStatusCondition(conditions, metav1.Condition{
		Type: kvopv1.ConditionReady, Status: s, Reason: reason, Message: message, ObservedGeneration: generation,
	})
}

// IsReady reports whether conditions hold Ready=True.
func IsReady(conditions []metav1.Condition) bool {
	return apimeta.IsStatusConditionTrue(conditions, kvopv1.ConditionReady)
}

// Patch writes obj's status as a merge patch against before, the object as it was fetched: the
// one status write of a reconcile. Nothing is sent when nothing changed.
func Patch(ctx context.Context, c client.Client, obj, before client.Object) error {
	patch := client.MergeFrom(before)
	data, err := patch.Data(obj)
	if err != nil {
		return err
	}
	if string(data) == "{}" {
		return nil
	}
	return c.Status().Patch(ctx, obj, patch)
}

// ReasonFor maps an error from a store to a condition reason.
func ReasonFor(err error) string {
	switch {
	case errors.Is(err, kvstore.ErrNotReachable):
		return kvopv1.ReasonUnreachable
	case errors.Is(err, kvstore.ErrAuthFailed):
		return kvopv1.ReasonAuthFailed
	default:
		return kvopv1.ReasonStoreError
	}
}
