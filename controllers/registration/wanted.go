package registration

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/pkg/discovery"
)

// wantedEntry is an entry to keep in the store, with the exact bytes its format writes for it
// (json.Marshal is deterministic: struct order, sorted map keys).
type wantedEntry struct {
	entry discovery.Entry
	// since is when the pod became Ready (the curator format's registrationTimeUTC): taken
	// from the pod, not the clock, so that the value stays the same from reconcile to reconcile.
	since time.Time
	value string
}

// wantedEntries returns, by normalised key, the entries of the kv format of the pods that should
// be registered now, and a note for each matching pod that cannot be.
func wantedEntries(reg *kvopv1.Registration, pods []corev1.Pod, owner, prefix string) (map[string]wantedEntry, []string) {
	return wantedFor(reg, pods, owner, kvCodec{prefix})
}

// wantedFor returns, by the format's key, the entries of the pods that should be registered now,
// and a note for each matching pod that cannot be. pods are the ones the selector matched.
func wantedFor(reg *kvopv1.Registration, pods []corev1.Pod, owner string, c codec) (map[string]wantedEntry, []string) {
	pods = slices.Clone(pods)
	// Sorted so that, should two pods share an address (host network), the same one wins on
	// every reconcile.
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	wanted := map[string]wantedEntry{}
	var skipped []string
	for i := range pods {
		pod := &pods[i]
		if !registrable(pod) {
			continue
		}
		port, ok := resolvePort(pod, reg.Spec.Port)
		if !ok {
			skipped = append(skipped, fmt.Sprintf("%s (no container port named %q)", pod.Name, reg.Spec.Port.StrVal))
			continue
		}
		e := discovery.Entry{
			Service:   serviceOf(reg),
			Address:   pod.Status.PodIP,
			Port:      port,
			Pod:       pod.Name,
			Namespace: pod.Namespace,
			Node:      pod.Spec.NodeName,
			Metadata:  reg.Spec.Metadata,
			Owner:     owner,
		}
		if err := e.Validate(); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s (%v)", pod.Name, err))
			continue
		}
		key, err := c.key(e)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s (%v)", pod.Name, err))
			continue
		}
		if prev, dup := wanted[key]; dup {
			skipped = append(skipped, fmt.Sprintf("%s (same address %s as pod %s)", pod.Name, e.Endpoint(), prev.entry.Pod))
			continue
		}
		w := wantedEntry{entry: e, since: readySince(pod)}
		if w.value, err = c.encode(w); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s (%v)", pod.Name, err))
			continue
		}
		wanted[key] = w
	}
	return wanted, skipped
}

// registrable: the pod serves traffic — Ready, with an IP, and not terminating.
func registrable(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.PodIP == "" {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readySince is when the pod last became Ready (its creation when the condition has no time).
func readySince(pod *corev1.Pod) time.Time {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	return pod.CreationTimestamp.Time
}

// resolvePort returns the port number of spec.port for pod: the number itself, or the
// container port of that name (containers first, then sidecar init containers). A name that
// no container declares but that is all digits is taken as the number it spells.
func resolvePort(pod *corev1.Pod, port intstr.IntOrString) (int, bool) {
	if port.Type == intstr.Int {
		return int(port.IntVal), port.IntVal > 0
	}
	for _, containers := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range containers {
			for _, p := range c.Ports {
				if p.Name == port.StrVal {
					return int(p.ContainerPort), true
				}
			}
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil && n > 0 && n <= 65535 {
		return n, true
	}
	return 0, false
}
