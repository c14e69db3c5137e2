package registration

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	kvopv1 "github.com/kvop/kvop/api/v1"
)

func pod(name, ip string, ready bool, mutate ...func(*corev1.Pod)) corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "app",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
		Status: corev1.PodStatus{PodIP: ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
	for _, m := range mutate {
		m(&p)
	}
	return p
}

func TestWantedEntries(t *testing.T) {
	now := metav1.Now()
	tests := []struct {
		name    string
		port    intstr.IntOrString
		pods    []corev1.Pod
		want    []string // keys
		skipped int
	}{
		{name: "ready pods by number", port: intstr.FromInt32(80),
			pods: []corev1.Pod{pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", true)},
			want: []string{"p/services/svc/10.0.0.1:80", "p/services/svc/10.0.0.2:80"}},
		{name: "not ready, no IP, terminating are left out", port: intstr.FromInt32(80),
			pods: []corev1.Pod{pod("a", "10.0.0.1", false), pod("b", "", true),
				pod("c", "10.0.0.3", true, func(p *corev1.Pod) { p.DeletionTimestamp = &now }),
				pod("d", "10.0.0.4", true, func(p *corev1.Pod) { p.Status.Conditions = nil })}},
		{name: "named port", port: intstr.FromString("http"),
			pods: []corev1.Pod{pod("a", "10.0.0.1", true)}, want: []string{"p/services/svc/10.0.0.1:8080"}},
		{name: "named port of a sidecar", port: intstr.FromString("metrics"),
			pods: []corev1.Pod{pod("a", "10.0.0.1", true, func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{{Name: "side", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9100}}}}
			})}, want: []string{"p/services/svc/10.0.0.1:9100"}},
		{name: "missing port name is skipped", port: intstr.FromString("grpc"),
			pods: []corev1.Pod{pod("a", "10.0.0.1", true)}, skipped: 1},
		{name: "all-digit name no container declares", port: intstr.FromString("8081"),
			pods: []corev1.Pod{pod("a", "10.0.0.1", true)}, want: []string{"p/services/svc/10.0.0.1:8081"}},
		{name: "IPv6", port: intstr.FromInt32(80),
			pods: []corev1.Pod{pod("a", "fd00::1", true)}, want: []string{"p/services/svc/[fd00::1]:80"}},
		{name: "shared address: the first pod by name wins", port: intstr.FromInt32(80),
			pods: []corev1.Pod{pod("b", "10.0.0.1", true), pod("a", "10.0.0.1", true)},
			want: []string{"p/services/svc/10.0.0.1:80"}, skipped: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := &kvopv1.Registration{ObjectMeta: metav1.ObjectMeta{Name: "svc", Namespace: "ns"},
				Spec: kvopv1.RegistrationSpec{Port: tc.port}}
			wanted, skipped := wantedEntries(reg, tc.pods, "c/u", "/p/")
			keys := sortedKeys(wanted)
			if len(keys) != len(tc.want) {
				t.Fatalf("keys %v, want %v", keys, tc.want)
			}
			for i := range keys {
				if keys[i] != tc.want[i] {
					t.Fatalf("keys %v, want %v", keys, tc.want)
				}
			}
			if len(skipped) != tc.skipped {
				t.Errorf("skipped %v, want %d", skipped, tc.skipped)
			}
			for _, w := range wanted {
				if w.entry.Owner != "c/u" || w.entry.Node != "n1" || w.entry.Namespace != "ns" {
					t.Errorf("entry %+v", w.entry)
				}
			}
			if tc.name == "shared address: the first pod by name wins" && wanted[keys[0]].entry.Pod != "a" {
				t.Errorf("pod %s won, want a", wanted[keys[0]].entry.Pod)
			}
		})
	}
}
