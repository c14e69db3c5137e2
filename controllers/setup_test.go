package controllers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	toolscache "k8s.io/client-go/tools/cache"
)

// TestTrimPod: the cached Pod keeps every field the controllers read and loses the bulk.
func TestTrimPod(t *testing.T) {
	now := metav1.NewTime(time.Unix(1_800_000_000, 0))
	always := corev1.ContainerRestartPolicyAlways
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-0", Namespace: "shop", UID: "u1", ResourceVersion: "42", CreationTimestamp: now,
			DeletionTimestamp: &now, Labels: map[string]string{"app": "web"},
			Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
			Finalizers:    []string{"x"},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-1",
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.invalid/app:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				Env:            []corev1.EnvVar{{Name: "A", Value: "b"}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080)}}},
			}},
			InitContainers: []corev1.Container{{Name: "proxy", RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "grpc", ContainerPort: 9090}}}},
			Volumes:        []corev1.Volume{{Name: "data"}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}},
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true}},
		},
	}
	out, err := TrimPod(pod)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Pod)
	switch {
	case got.Name != "web-0" || got.Namespace != "shop" || got.UID != "u1" || got.ResourceVersion != "42":
		t.Errorf("identity lost: %+v", got.ObjectMeta)
	case !got.CreationTimestamp.Equal(&now) || got.DeletionTimestamp == nil || got.Labels["app"] != "web":
		t.Errorf("times or labels lost: %+v", got.ObjectMeta)
	case got.Spec.NodeName != "node-1" || len(got.Spec.Containers) != 1 || got.Spec.Containers[0].Ports[0].ContainerPort != 8080:
		t.Errorf("node or container ports lost: %+v", got.Spec)
	case len(got.Spec.InitContainers) != 1 || got.Spec.InitContainers[0].Ports[0].Name != "grpc" || got.Spec.InitContainers[0].RestartPolicy == nil:
		t.Errorf("sidecar ports lost: %+v", got.Spec.InitContainers)
	case got.Status.PodIP != "10.0.0.1" || len(got.Status.PodIPs) != 1 || len(got.Status.Conditions) != 1 || got.Status.Phase != corev1.PodRunning:
		t.Errorf("status lost: %+v", got.Status)
	}
	switch {
	case got.Annotations != nil || got.ManagedFields != nil || got.Finalizers != nil:
		t.Errorf("metadata bulk kept: %+v", got.ObjectMeta)
	case got.Spec.Volumes != nil || got.Spec.Containers[0].Env != nil || got.Spec.Containers[0].Image != "" ||
		got.Spec.Containers[0].ReadinessProbe != nil:
		t.Errorf("spec bulk kept: %+v", got.Spec)
	case got.Status.ContainerStatuses != nil:
		t.Errorf("container statuses kept: %+v", got.Status)
	}

	// A tombstone of a deleted pod passes unchanged.
	tomb := toolscache.DeletedFinalStateUnknown{Key: "shop/web-0", Obj: pod}
	if out, err := TrimPod(tomb); err != nil || out != any(tomb) {
		t.Errorf("tombstone: %v, %v", out, err)
	}
}
