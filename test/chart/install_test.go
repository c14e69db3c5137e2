package chart_test

import (
	"context"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kvop/kvop/internal/testservers"
)

// installOrder is the order in which Helm creates kinds (a subset of its InstallOrder).
var installOrder = []string{
	"Namespace", "CustomResourceDefinition", "ServiceAccount", "PersistentVolumeClaim",
	"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "Deployment",
}

func kindRank(kind string) int {
	if i := slices.Index(installOrder, kind); i >= 0 {
		return i
	}
	return len(installOrder)
}

// TestInstall installs the rendered chart into a real kube-apiserver (server-side apply of every
// object, in Helm's install order: a field the API does not know is an error), waits for the
// CRDs to be Established, creates the sample KVEndpoint, then upgrades the release with other
// values (applying the new objects with the same field manager, so fields the new release
// drops go away).
func TestInstall(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	kube := testservers.KubeAPIServer(t, testservers.KubeOptions{Scheme: scheme})
	c := kube.Client
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for _, ns := range []string{releaseNamespace, "apps"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatalf("namespace %s: %v", ns, err)
		}
	}

	// helm install kvop charts/kvop -n kvop-system --set persistence.enabled=true,metrics.secure=true
	m := render(t, "persistence: {enabled: true}\nmetrics: {secure: true}")
	objs := apply(ctx, t, c, m)
	for _, o := range m.ofKind("CustomResourceDefinition") {
		waitEstablished(ctx, t, c, o.GetName())
	}

	// Every object is there as rendered.
	for _, o := range objs {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(o.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), got); err != nil {
			t.Errorf("get %s: %v", key(o), err)
		}
	}
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: releaseName}, &d); err != nil {
		t.Fatal(err)
	}
	if d.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim == nil || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("stored Deployment = %+v", d.Spec)
	}

	// The short names NOTES.txt uses resolve (kubectl get kve,kreg,klease).
	var shortNames []string
	for _, o := range m.ofKind("CustomResourceDefinition") {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), &crd); err != nil {
			t.Fatal(err)
		}
		shortNames = append(shortNames, crd.Status.AcceptedNames.ShortNames...)
	}
	slices.Sort(shortNames)
	if !slices.Equal(shortNames, []string{"klease", "kreg", "kve"}) {
		t.Errorf("accepted short names = %v, want kve, kreg, klease", shortNames)
	}

	// The sample KVEndpoint (config/samples, as in NOTES.txt) is valid under the installed CRD.
	sample := readConfig(t, "config/samples/kvop_v1_kvendpoint.yaml")[0]
	sample.SetNamespace("apps")
	if err := c.Create(ctx, sample, client.FieldValidation(metav1.FieldValidationStrict)); err != nil {
		t.Fatalf("sample KVEndpoint refused: %v", err)
	}

	// helm upgrade with other values: every object of the new release applies over the old.
	up := render(t, "crds: {keep: false}\nreplicas: 2\nwatchNamespace: apps\nrbac: {namespaced: true}\nimage: {tag: v0.2.0}")
	apply(ctx, t, c, up)
	for _, o := range up.ofKind("CustomResourceDefinition") {
		waitEstablished(ctx, t, c, o.GetName())
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(&d), &d); err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Containers[0].Image != "kvop/manager:v0.2.0" ||
		!slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--namespace=apps") {
		t.Errorf("upgraded Deployment = %+v", d.Spec.Template.Spec.Containers[0])
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := c.Get(ctx, client.ObjectKey{Name: "kvendpoints.kvop.io"}, &crd); err != nil {
		t.Fatal(err)
	}
	if _, kept := crd.Annotations[keepPolicy]; kept {
		t.Errorf("upgrade with crds.keep=false left %s on the CRD: %v", keepPolicy, crd.Annotations)
	}
}

// apply server-side applies the manifest's objects in install order and returns them in it.
func apply(ctx context.Context, t *testing.T, c client.Client, m manifest) []*unstructured.Unstructured {
	t.Helper()
	objs := slices.Clone(m.objs)
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int { return kindRank(a.GetKind()) - kindRank(b.GetKind()) })
	for _, o := range objs {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), client.FieldOwner("helm"), client.ForceOwnership); err != nil {
			t.Fatalf("API server refused %s: %v", key(o), err)
		}
	}
	return objs
}

// waitEstablished waits until the API server serves the CRD.
func waitEstablished(ctx context.Context, t *testing.T, c client.Client, name string) {
	t.Helper()
	var crd apiextensionsv1.CustomResourceDefinition
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.NamesAccepted && cond.Status == apiextensionsv1.ConditionFalse {
				return false, &namesError{name: name, msg: cond.Message}
			}
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not Established: %v (conditions %+v)", name, err, crd.Status.Conditions)
	}
}

type namesError struct{ name, msg string }

func (e *namesError) Error() string { return "CRD " + e.name + " names not accepted: " + e.msg }
