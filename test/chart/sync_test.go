package chart_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const staleHint = "the chart's generated templates are stale: run `make chart-crds` (after `make manifests`) and commit charts/kvop"

// readConfig parses the objects of one file under config/.
func readConfig(t *testing.T, rel string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), rel))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeYAML(string(b))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return objs
}

// TestCRDsMatchConfig: the chart installs exactly the CRDs of config/crd/bases (what
// controller-gen generates from api/), with only the chart's labels and the keep policy added.
func TestCRDsMatchConfig(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot(), "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	want := map[string]*unstructured.Unstructured{}
	for _, f := range files {
		rel, _ := filepath.Rel(repoRoot(), f)
		for _, crd := range readConfig(t, rel) {
			want[crd.GetName()] = crd
		}
	}

	m := render(t, "")
	got := map[string]*unstructured.Unstructured{}
	for _, crd := range m.ofKind("CustomResourceDefinition") {
		crd = crd.DeepCopy()
		crd.SetLabels(nil) // the chart's labels
		ann := crd.GetAnnotations()
		if ann[keepPolicy] != "keep" {
			t.Errorf("CRD %s: %s = %q, want keep", crd.GetName(), keepPolicy, ann[keepPolicy])
		}
		delete(ann, keepPolicy)
		crd.SetAnnotations(ann)
		got[crd.GetName()] = crd
	}

	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("CRD %s is in config/crd/bases but not in the chart; %s", name, staleHint)
			continue
		}
		if !reflect.DeepEqual(g.Object, w.Object) {
			t.Errorf("CRD %s differs from config/crd/bases; %s\n%s", name, staleHint, firstDifference(t, w.Object, g.Object))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("the chart installs CRD %s, which config/crd/bases no longer has; %s", name, staleHint)
		}
	}
}

// TestClusterRoleMatchesConfig: the manager's ClusterRole in the chart has exactly the rules
// that controller-gen writes into config/rbac/role.yaml from the controllers' RBAC markers.
func TestClusterRoleMatchesConfig(t *testing.T) {
	roles := readConfig(t, filepath.Join("config", "rbac", "role.yaml"))
	if len(roles) != 1 || roles[0].GetKind() != "ClusterRole" {
		t.Fatalf("config/rbac/role.yaml holds %d objects, want one ClusterRole (teach hack/sync-chart-crds.sh the others)", len(roles))
	}
	want := roles[0].Object["rules"]
	got := render(t, "").must(t, "ClusterRole", "kvop-manager").Object["rules"]
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the chart's manager ClusterRole differs from config/rbac/role.yaml; %s\n%s", staleHint,
			firstDifference(t, map[string]any{"rules": want}, map[string]any{"rules": got}))
	}
}

// TestAggregatedRolesCoverEveryKind: the roles aggregated into admin/edit/view name every kind
// the chart installs (a new CRD must be added to templates/rbac/aggregate.yaml).
func TestAggregatedRolesCoverEveryKind(t *testing.T) {
	m := render(t, "")
	var plurals []string
	for _, crd := range m.ofKind("CustomResourceDefinition") {
		p, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
		plurals = append(plurals, p)
	}
	for _, name := range []string{"kvop-edit", "kvop-view"} {
		rules, _, _ := unstructured.NestedSlice(m.must(t, "ClusterRole", name).Object, "rules")
		var resources []string
		for _, r := range rules {
			rs, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
			resources = append(resources, rs...)
		}
		for _, p := range plurals {
			if !slices.Contains(resources, p) || !slices.Contains(resources, p+"/status") {
				t.Errorf("ClusterRole %s does not cover %s and %s/status: add them to charts/kvop/templates/rbac/aggregate.yaml", name, p, p)
			}
		}
	}
}

// firstDifference shows where two objects' YAML first differ, with a little context.
func firstDifference(t *testing.T, want, got map[string]any) string {
	t.Helper()
	wb, err1 := yaml.Marshal(want)
	gb, err2 := yaml.Marshal(got)
	if err1 != nil || err2 != nil {
		return fmt.Sprint(err1, err2)
	}
	wl, gl := strings.Split(string(wb), "\n"), strings.Split(string(gb), "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		w, g := line(wl, i), line(gl, i)
		if w != g {
			from := max(0, i-3)
			return fmt.Sprintf("first difference at line %d:\n  config:\n    %s\n  chart:\n    %s",
				i+1, strings.Join(wl[from:min(len(wl), i+3)], "\n    "), strings.Join(gl[from:min(len(gl), i+3)], "\n    "))
		}
	}
	return "(no textual difference)"
}

func line(ls []string, i int) string {
	if i < len(ls) {
		return ls[i]
	}
	return "<end>"
}
