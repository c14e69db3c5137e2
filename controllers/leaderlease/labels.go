package leaderlease

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kvopv1 "github.com/kvop/kvop/api/v1"
)

// isCandidate reports whether a pod (matching the selector) campaigns: Ready and not
// terminating.
func isCandidate(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// wantedLabel is the leader label value a pod matching the selector should carry, or "" to
// leave it as it is.
func wantedLabel(pod *corev1.Pod, leader string, current string, present bool) string {
	switch {
	case pod.Name == leader:
		return "true"
	case leader != "" || !isCandidate(pod) || !present:
		return "false"
	default:
		// Nobody leads: a Ready candidate keeps its value, so that the last leader keeps
		// "true" through a handover or a restart of kvop instead of flapping.
		return current
	}
}

// labelPods sets the leader label on the pods that match the selector. Demotions go first, so
// that kvop never has two pods carry "true" at once.
func (r *Reconciler) labelPods(ctx context.Context, pods []corev1.Pod, label, leader string) error {
	type change struct {
		pod   *corev1.Pod
		value string
	}
	var demote, promote []change
	for i := range pods {
		pod := &pods[i] // a terminating pod too: it must not be listed as leader while it goes
		current, present := pod.Labels[label]
		want := wantedLabel(pod, leader, current, present)
		switch {
		case present && current == want:
		case want == "true":
			promote = append(promote, change{pod, want})
		default:
			demote = append(demote, change{pod, want})
		}
	}
	for _, c := range append(demote, promote...) {
		if err := r.setPodLabel(ctx, c.pod, label, c.value); err != nil {
			return err
		}
	}
	return nil
}

// setPodLabel merge-patches one label of a pod; value "" removes it. A pod that is gone
// needs no label.
func (r *Reconciler) setPodLabel(ctx context.Context, pod *corev1.Pod, label, value string) error {
	before := pod.DeepCopy()
	if value == "" {
		delete(pod.Labels, label)
	} else {
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Labels[label] = value
	}
	if err := r.Patch(ctx, pod, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("labelling pod %s: %w", pod.Name, err)
	}
	return nil
}

func hasLabel(pod *corev1.Pod, label string) bool {
	_, ok := pod.Labels[label]
	return ok
}

// unlabelStale removes the leader label kvop set earlier (status.leaderLabel on
// status.labelledPods) from the pods it no longer manages under that key: every one of them
// when the key changed or the lease turned to observe mode (managed nil), otherwise those that
// left the selector. A stale "true" would keep a pod behind a Service that selects the leader.
func (r *Reconciler) unlabelStale(ctx context.Context, lease *kvopv1.LeaderLease, managed []corev1.Pod, label string) error {
	old := lease.Status.LeaderLabel
	if old == "" {
		return nil
	}
	still := map[string]bool{}
	if old == label {
		for i := range managed {
			still[managed[i].Name] = true
		}
	}
	for _, name := range lease.Status.LabelledPods {
		if still[name] {
			continue
		}
		var pod corev1.Pod
		err := r.Get(ctx, types.NamespacedName{Namespace: lease.Namespace, Name: name}, &pod)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return fmt.Errorf("reading pod %s to remove its leader label: %w", name, err)
		}
		if hasLabel(&pod, old) {
			if err := r.setPodLabel(ctx, &pod, old, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// recordLabelled notes in status which pods carry the leader label now (label "" and pods nil:
// none), so that a later reconcile can take it off again.
func recordLabelled(st *kvopv1.LeaderLeaseStatus, label string, pods []corev1.Pod) {
	st.LeaderLabel, st.LabelledPods = label, nil
	for i := range pods {
		if hasLabel(&pods[i], label) {
			st.LabelledPods = append(st.LabelledPods, pods[i].Name)
		}
	}
	slices.Sort(st.LabelledPods)
	if len(st.LabelledPods) == 0 {
		st.LeaderLabel = ""
	}
}
