package operatorfaults

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/operatortest"
	"github.com/kvop/kvop/pkg/kvstore"
)

// managerRole reads config/rbac/role.yaml, the ClusterRole that controller-gen writes from the
// controllers' markers and that the install and the chart bind to the manager.
func managerRole(t *testing.T) *rbacv1.ClusterRole {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(operatortest.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(b, role); err != nil {
		t.Fatalf("config/rbac/role.yaml: %v", err)
	}
	return role
}

// TestRoleGrantsOnlyWhatIsUsed checks the role against the verbs the controllers use, rule by
// rule: nothing more (a wildcard, a write to Secrets, a cluster-scoped resource beyond reading
// the kube-system namespace for the cluster id), and TestControllersUnderRole proves it is
// enough.
func TestRoleGrantsOnlyWhatIsUsed(t *testing.T) {
	t.Parallel()
	// What each resource may be granted, and why the controllers need it.
	allowed := map[string][]string{
		"/secrets":                         {"get", "list", "watch"},          // KVEndpoint reads credentials and TLS material
		"/pods":                            {"get", "list", "patch", "watch"}, // Registration reads, LeaderLease labels
		"/namespaces":                      {"get"},                           // the default cluster id (kube-system's UID)
		"events.k8s.io/events":             {"create", "patch"},
		"kvop.io/kvendpoints":              {"get", "list", "watch"},
		"kvop.io/kvendpoints/status":       {"get", "patch", "update"},
		"kvop.io/registrations":            {"get", "list", "patch", "update", "watch"}, // update: the finalizer
		"kvop.io/registrations/status":     {"get", "patch", "update"},
		"kvop.io/registrations/finalizers": {"update"},
		"kvop.io/leaderleases":             {"get", "list", "patch", "update", "watch"},
		"kvop.io/leaderleases/status":      {"get", "patch", "update"},
		"kvop.io/leaderleases/finalizers":  {"update"},
	}
	granted := map[string][]string{}
	for _, rule := range managerRole(t).Rules {
		if len(rule.NonResourceURLs) > 0 {
			t.Errorf("rule %v grants non-resource URLs", rule)
		}
		for _, verb := range rule.Verbs {
			if verb == "*" || verb == "delete" || verb == "deletecollection" || verb == "escalate" || verb == "bind" || verb == "impersonate" {
				t.Errorf("rule %v grants %q", rule, verb)
			}
		}
		for _, group := range rule.APIGroups {
			for _, res := range rule.Resources {
				r := group + "/" + res
				if group == "*" || strings.Contains(res, "*") {
					t.Errorf("rule %v has a wildcard", rule)
				}
				if res == "namespaces" && !slices.Equal(rule.ResourceNames, []string{"kube-system"}) {
					t.Errorf("namespaces are granted beyond kube-system: %v", rule)
				}
				if res != "namespaces" && len(rule.ResourceNames) > 0 {
					t.Errorf("rule %v limits %s to names: the controllers need every object of the kind", rule, r)
				}
				granted[r] = append(granted[r], rule.Verbs...)
			}
		}
	}
	for r, verbs := range granted {
		slices.Sort(verbs)
		verbs = slices.Compact(verbs)
		want, ok := allowed[r]
		if !ok {
			t.Errorf("the role grants %v on %s, which no controller uses", verbs, r)
			continue
		}
		for _, v := range verbs {
			if !slices.Contains(want, v) {
				t.Errorf("the role grants %q on %s; the controllers use only %v", v, r, want)
			}
		}
	}
	for r, want := range allowed {
		if _, ok := granted[r]; !ok {
			t.Errorf("the role grants nothing on %s; the controllers need %v", r, want)
		}
	}
}

// TestControllersUnderRole runs the controllers as a user bound only to the manager's
// ClusterRole: endpoint Ready, entries registered, the leader labelled, and deleting the
// Registration and the lease cleans up (finalizers) — with no request refused on the way.
func TestControllersUnderRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	role := managerRole(t)
	if err := operatortest.Client.Create(ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	ns := operatortest.Namespace(t)
	userName := "system:serviceaccount:" + ns + ":kvop-manager"
	user, err := operatortest.Kube.Env.AddUser(envtest.User{Name: userName}, nil)
	if err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kvop-manager-" + ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: userName}},
	}
	if err := operatortest.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = operatortest.Client.Delete(context.Background(), binding) })

	// The user can do no more than the role says: no Secret writes, for one.
	userClient, err := client.New(user.Config(), client.Options{Scheme: operatortest.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	operatortest.Eventually(t, settle, func() (bool, string) {
		err := userClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "not-allowed"}})
		return apierrors.IsForbidden(err), "creating a Secret as the manager's user: " + errString(err) + ", want Forbidden"
	})

	logs := &syncBuffer{}
	logger := zap.New(zap.WriteTo(logs), zap.UseDevMode(true))
	tg := backendtest.Get(t, kvstore.Etcd)
	f := newFixture(t, tg)
	f.ns = ns
	f.mgr = operatortest.StartManagerWith(t, ns, operatortest.ManagerOptions{Config: user.Config(), Logger: &logger})
	f.createWorkload()
	f.waitEndpoint(metav1.ConditionTrue, settle)
	f.waitEntries(settle)
	leader, _ := f.waitLeader(settle)

	// Finalizers: deleting both cleans the store and the labels.
	if err := operatortest.Client.Delete(ctx, &kvopv1.Registration{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: regName}}); err != nil {
		t.Fatal(err)
	}
	if err := operatortest.Client.Delete(ctx, &kvopv1.LeaderLease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: leaseName}}); err != nil {
		t.Fatal(err)
	}
	operatortest.Eventually(t, settle, func() (bool, string) {
		entries, err := f.reader.entries(f.prefix)
		return err == nil && len(entries) == 0, "entries left after the Registration was deleted: " + errString(err)
	})
	operatortest.Eventually(t, settle, func() (bool, string) {
		labels, err := f.leaderLabels()
		if err != nil {
			return false, err.Error()
		}
		for pod, v := range labels {
			if v != "" {
				return false, pod + " still has the leader label after the lease was deleted"
			}
		}
		return true, ""
	})
	var events eventsv1.EventList
	if err := operatortest.Client.List(ctx, &events, client.InNamespace(ns)); err != nil || len(events.Items) == 0 {
		t.Errorf("no events recorded by the manager's user (%v)", err)
	}
	f.alive("end of the test")
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "forbidden") {
			t.Errorf("a request of the manager was refused: %s", line)
		}
	}
	figure(t, "rbac: controllers as %s bound only to %s: endpoint Ready, 3 entries, leader %s labelled, finalizers ran; %d events, no request refused",
		userName, role.Name, leader, len(events.Items))
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
