package chart_test

import (
	"bytes"
	"errors"
	"io"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	runtimeutil "k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const (
	releaseName      = "kvop"
	releaseNamespace = "kvop-system"
)

// repoRoot is the kvop checkout this test was compiled from.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func chartDir() string { return filepath.Join(repoRoot(), "charts", "kvop") }

// kubeVersion is the Kubernetes version the chart is rendered for (Helm's default is older).
var kubeVersion = chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}

// manifest is a rendered release: its objects in template order, and NOTES.txt.
type manifest struct {
	objs  []*unstructured.Unstructured
	notes string
}

func loadChart(t testing.TB) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir())
	if err != nil {
		t.Fatalf("loading %s: %v", chartDir(), err)
	}
	return ch
}

func parseValues(t testing.TB, valuesYAML string) chartutil.Values {
	t.Helper()
	vals, err := chartutil.ReadValues([]byte(valuesYAML))
	if err != nil {
		t.Fatalf("bad test values %q: %v", valuesYAML, err)
	}
	return vals
}

// renderE renders the chart as `helm install kvop charts/kvop -n kvop-system -f <values>`
// would, validating the values against values.schema.json and failing on any template that
// reads a value values.yaml does not define (strict mode, as `helm lint` renders).
func renderE(t testing.TB, valuesYAML string) (manifest, error) {
	t.Helper()
	ch := loadChart(t)
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = kubeVersion
	vals, err := chartutil.ToRenderValues(ch, parseValues(t, valuesYAML),
		chartutil.ReleaseOptions{Name: releaseName, Namespace: releaseNamespace, IsInstall: true, Revision: 1}, caps)
	if err != nil {
		return manifest{}, err
	}
	files, err := engine.Engine{Strict: true}.Render(ch, vals)
	if err != nil {
		return manifest{}, err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var m manifest
	for _, name := range names {
		switch {
		case strings.HasPrefix(path.Base(name), "_"):
			continue
		case path.Base(name) == "NOTES.txt":
			m.notes = files[name]
			continue
		}
		objs, err := decodeYAML(files[name])
		if err != nil {
			return manifest{}, errors.New(name + ": " + err.Error())
		}
		m.objs = append(m.objs, objs...)
	}
	return m, nil
}

// render is renderE for values that must render.
func render(t testing.TB, valuesYAML string) manifest {
	t.Helper()
	m, err := renderE(t, valuesYAML)
	if err != nil {
		t.Fatalf("rendering the chart with values %q: %v", valuesYAML, err)
	}
	return m
}

// decodeYAML parses a multi-document YAML stream, skipping empty documents.
func decodeYAML(s string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewBufferString(s), 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// key names an object as Kind/namespace/name.
func key(u *unstructured.Unstructured) string {
	return u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
}

// keys lists the objects' keys, sorted.
func (m manifest) keys() []string {
	var ks []string
	for _, o := range m.objs {
		ks = append(ks, key(o))
	}
	sort.Strings(ks)
	return ks
}

// get returns the object of that kind and name, or nil.
func (m manifest) get(kind, name string) *unstructured.Unstructured {
	for _, o := range m.objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func (m manifest) must(t testing.TB, kind, name string) *unstructured.Unstructured {
	t.Helper()
	o := m.get(kind, name)
	if o == nil {
		t.Fatalf("no %s %q rendered; got %v", kind, name, m.keys())
	}
	return o
}

func (m manifest) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m.objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// into converts a rendered object into a typed one, failing on fields the type does not have
// (a misspelt or misplaced field in a template).
func into(t testing.TB, u *unstructured.Unstructured, obj any) {
	t.Helper()
	if err := runtimeutil.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, obj, true); err != nil {
		t.Fatalf("%s does not decode as %T: %v", key(u), obj, err)
	}
}

func (m manifest) deployment(t testing.TB) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	into(t, m.must(t, "Deployment", releaseName), &d)
	return &d
}

// manager returns the manager container of the Deployment.
func manager(t testing.TB, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "manager" {
		t.Fatalf("containers = %+v, want one named manager", cs)
	}
	return cs[0]
}

// flag returns the value of --name=value (or "" for a bare --name) and whether it is present.
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if a == "--"+name {
			return "", true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// volume returns the pod volume of that name.
func volume(t testing.TB, d *appsv1.Deployment, name string) corev1.Volume {
	t.Helper()
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q in %+v", name, d.Spec.Template.Spec.Volumes)
	return corev1.Volume{}
}
