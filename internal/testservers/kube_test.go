package testservers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kvop/kvop/internal/testservers"
)

// TestKubeAPIServer starts a real kube-apiserver, installs a CRD (and sees its schema enforced),
// creates a Pod and marks it Ready through the status subresource, as controller tests will.
func TestKubeAPIServer(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	kube := testservers.KubeAPIServer(t, testservers.KubeOptions{CRDDirectoryPaths: []string{"testdata/crds"}, Scheme: scheme})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := kube.Client

	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := c.Get(ctx, client.ObjectKey{Name: "widgets.test.kvop.io"}, crd); err != nil {
		t.Fatalf("CRD not installed: %v", err)
	}

	widget := func(size int64) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("test.kvop.io/v1")
		u.SetKind("Widget")
		u.SetNamespace("default")
		u.SetGenerateName("w-")
		_ = unstructured.SetNestedField(u.Object, size, "spec", "size")
		return u
	}
	if err := c.Create(ctx, widget(3)); err != nil {
		t.Fatalf("valid custom resource refused: %v", err)
	}
	err := c.Create(ctx, widget(0))
	if err == nil || !strings.Contains(err.Error(), "spec.size") {
		t.Fatalf("invalid custom resource: err = %v, want a schema error naming spec.size", err)
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web"}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	pod.Status.PodIP = "10.0.0.7"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.7"}}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if err := c.Status().Update(ctx, pod); err != nil {
		t.Fatalf("update pod status: %v", err)
	}
	var got corev1.Pod
	if err := c.Get(ctx, client.ObjectKeyFromObject(pod), &got); err != nil {
		t.Fatal(err)
	}
	ready := false
	for _, cond := range got.Status.Conditions {
		ready = ready || (cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue)
	}
	if !ready || got.Status.PodIP != "10.0.0.7" {
		t.Fatalf("pod status = %+v, want Ready with IP 10.0.0.7", got.Status)
	}
}
