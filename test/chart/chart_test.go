package chart_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

const keepPolicy = "helm.sh/resource-policy"

func TestDefaults(t *testing.T) {
	m := render(t, "")

	want := []string{
		"ClusterRole//kvop-edit",
		"ClusterRole//kvop-manager",
		"ClusterRole//kvop-view",
		"ClusterRoleBinding//kvop-manager",
		"CustomResourceDefinition//kvendpoints.kvop.io",
		"CustomResourceDefinition//leaderleases.kvop.io",
		"CustomResourceDefinition//registrations.kvop.io",
		"Deployment/kvop-system/kvop",
		"Role/kvop-system/kvop-leader-election",
		"RoleBinding/kvop-system/kvop-leader-election",
		"Service/kvop-system/kvop-metrics",
		"ServiceAccount/kvop-system/kvop",
	}
	if got := m.keys(); !slices.Equal(got, want) {
		t.Fatalf("rendered objects:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	for _, o := range m.objs {
		l := o.GetLabels()
		for k, v := range map[string]string{
			"app.kubernetes.io/name":       "kvop",
			"app.kubernetes.io/instance":   releaseName,
			"app.kubernetes.io/managed-by": "Helm",
			"app.kubernetes.io/part-of":    "kvop",
			"app.kubernetes.io/version":    "0.1.0",
			"helm.sh/chart":                "kvop-0.1.0",
		} {
			if l[k] != v {
				t.Errorf("%s: label %s = %q, want %q", key(o), k, l[k], v)
			}
		}
	}
	for _, crd := range m.ofKind("CustomResourceDefinition") {
		if got := crd.GetAnnotations()[keepPolicy]; got != "keep" {
			t.Errorf("%s: %s = %q, want keep (crds.keep defaults to true)", key(crd), keepPolicy, got)
		}
	}

	d := m.deployment(t)
	if *d.Spec.Replicas != 1 {
		t.Errorf("replicas = %d, want 1", *d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("strategy = %q, want RollingUpdate without persistence", d.Spec.Strategy.Type)
	}
	sel, err := labels.ValidatedSelectorFromSet(d.Spec.Selector.MatchLabels)
	if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("selector %v does not select the pod template's labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != "kvop" {
		t.Errorf("serviceAccountName = %q, want kvop", pod.ServiceAccountName)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.FSGroup == nil || *psc.FSGroup != 65532 || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v, want non-root 65532 with fsGroup and RuntimeDefault seccomp", psc)
	}

	c := manager(t, d)
	if c.Image != "kvop/manager:0.1.0" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image = %q (%s), want kvop/manager:0.1.0 (the appVersion) IfNotPresent", c.Image, c.ImagePullPolicy)
	}
	wantArgs := []string{
		"--leader-elect",
		"--metrics-bind-address=:8080",
		"--health-probe-bind-address=:8081",
		"--probe-interval=30s",
		"--zap-log-level=info",
		"--zap-encoder=json",
	}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args = %q, want %q", c.Args, wantArgs)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext = %+v, want read-only root, no escalation, drop ALL", sc)
	}
	if c.Resources.Requests.Memory().String() != "64Mi" || c.Resources.Limits.Memory().String() != "256Mi" {
		t.Errorf("resources = %+v", c.Resources)
	}
	if len(c.Env) != 1 || c.Env[0].Name != "GOMEMLIMIT" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.ResourceFieldRef == nil ||
		c.Env[0].ValueFrom.ResourceFieldRef.Resource != "limits.memory" || c.Env[0].ValueFrom.ResourceFieldRef.ContainerName != "manager" {
		t.Errorf("env = %+v, want GOMEMLIMIT from the manager's limits.memory", c.Env)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes = %+v / %+v, want /healthz and /readyz", c.LivenessProbe, c.ReadinessProbe)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != "data" || c.VolumeMounts[0].MountPath != "/var/lib/kvop" {
		t.Errorf("volumeMounts = %+v, want data at /var/lib/kvop", c.VolumeMounts)
	}
	if v := volume(t, d, "data"); v.EmptyDir == nil {
		t.Errorf("data volume = %+v, want an emptyDir without persistence", v.VolumeSource)
	}

	// The metrics Service reaches the manager's metrics port.
	var svc corev1.Service
	into(t, m.must(t, "Service", "kvop-metrics"), &svc)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the manager pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 || svc.Spec.Ports[0].TargetPort.StrVal != "metrics" ||
		!slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" && p.ContainerPort == 8080 }) {
		t.Errorf("Service ports %+v / container ports %+v, want 8080 -> metrics", svc.Spec.Ports, c.Ports)
	}

	// Every binding names the ServiceAccount the pods run as.
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, u := range m.ofKind(kind) {
			var b rbacv1.RoleBinding // same shape as a ClusterRoleBinding
			into(t, u, &b)
			if len(b.Subjects) != 1 || b.Subjects[0].Name != "kvop" || b.Subjects[0].Namespace != releaseNamespace {
				t.Errorf("%s subjects = %+v, want ServiceAccount kvop-system/kvop", key(u), b.Subjects)
			}
			if m.get(b.RoleRef.Kind, b.RoleRef.Name) == nil {
				t.Errorf("%s refers to %s %s, which the chart does not render", key(u), b.RoleRef.Kind, b.RoleRef.Name)
			}
		}
	}
}

// TestValues renders each value (or group of values) away from its default.
func TestValues(t *testing.T) {
	tests := []struct {
		name   string
		values string
		check  func(t *testing.T, m manifest)
	}{
		{"crds disabled", "crds: {enabled: false}", func(t *testing.T, m manifest) {
			if crds := m.ofKind("CustomResourceDefinition"); len(crds) != 0 {
				t.Errorf("%d CRDs rendered, want none", len(crds))
			}
			if !strings.Contains(m.notes, "no CRDs") {
				t.Errorf("NOTES do not say the CRDs are missing:\n%s", m.notes)
			}
		}},
		{"crds not kept", "crds: {keep: false}", func(t *testing.T, m manifest) {
			crds := m.ofKind("CustomResourceDefinition")
			if len(crds) != 3 {
				t.Fatalf("%d CRDs, want 3", len(crds))
			}
			for _, crd := range crds {
				if _, ok := crd.GetAnnotations()[keepPolicy]; ok {
					t.Errorf("%s keeps %s with crds.keep=false", key(crd), keepPolicy)
				}
				if crd.GetAnnotations()["controller-gen.kubebuilder.io/version"] == "" {
					t.Errorf("%s lost its generated annotations", key(crd))
				}
			}
		}},
		{"image tag and policy", "image: {repository: registry.example/kvop, tag: v1.2.3, pullPolicy: Always}", func(t *testing.T, m manifest) {
			c := manager(t, m.deployment(t))
			if c.Image != "registry.example/kvop:v1.2.3" || c.ImagePullPolicy != corev1.PullAlways {
				t.Errorf("image = %q (%s)", c.Image, c.ImagePullPolicy)
			}
		}},
		{"image digest", "image: {digest: 'sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}", func(t *testing.T, m manifest) {
			if c := manager(t, m.deployment(t)); c.Image != "kvop/manager@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
				t.Errorf("image = %q, want the digest instead of the tag", c.Image)
			}
		}},
		{"image pull secrets", "imagePullSecrets: [{name: regcred}]", func(t *testing.T, m manifest) {
			if s := m.deployment(t).Spec.Template.Spec.ImagePullSecrets; len(s) != 1 || s[0].Name != "regcred" {
				t.Errorf("imagePullSecrets = %+v", s)
			}
		}},
		{"replicas with leader election", "replicas: 3", func(t *testing.T, m manifest) {
			d := m.deployment(t)
			if *d.Spec.Replicas != 3 {
				t.Errorf("replicas = %d, want 3", *d.Spec.Replicas)
			}
			if _, ok := flag(manager(t, d).Args, "leader-elect"); !ok {
				t.Error("no --leader-elect")
			}
		}},
		{"leader election off", "leaderElection: {enabled: false}", func(t *testing.T, m manifest) {
			if _, ok := flag(manager(t, m.deployment(t)).Args, "leader-elect"); ok {
				t.Error("--leader-elect with leaderElection.enabled=false")
			}
			if rs := m.ofKind("Role"); len(rs) != 0 {
				t.Errorf("leader election Role rendered without leader election: %v", m.keys())
			}
		}},
		{"leader election namespace", "leaderElection: {namespace: kvop-leases}", func(t *testing.T, m manifest) {
			if v, _ := flag(manager(t, m.deployment(t)).Args, "leader-election-namespace"); v != "kvop-leases" {
				t.Errorf("--leader-election-namespace = %q", v)
			}
			for _, kind := range []string{"Role", "RoleBinding"} {
				if o := m.must(t, kind, "kvop-leader-election"); o.GetNamespace() != "kvop-leases" {
					t.Errorf("%s in %q, want kvop-leases", kind, o.GetNamespace())
				}
			}
		}},
		{"manager flags", `
watchNamespace: apps
clusterId: prod-eu-1
probeInterval: 1m30s
logLevel: debug
logFormat: console
extraArgs: ["--zap-stacktrace-level=panic", "--zap-time-encoding=iso8601"]
`, func(t *testing.T, m manifest) {
			args := manager(t, m.deployment(t)).Args
			for name, want := range map[string]string{
				"namespace": "apps", "cluster-id": "prod-eu-1", "probe-interval": "1m30s",
				"zap-log-level": "debug", "zap-encoder": "console",
				"zap-stacktrace-level": "panic", "zap-time-encoding": "iso8601",
			} {
				if got, ok := flag(args, name); !ok || got != want {
					t.Errorf("--%s = %q (present %v), want %q; args %q", name, got, ok, want, args)
				}
			}
			// Cluster-wide RBAC stays (rbac.namespaced is off); NOTES point at the namespace.
			m.must(t, "ClusterRoleBinding", "kvop-manager")
			if !strings.Contains(m.notes, "kubectl get kve,kreg,klease -n apps") {
				t.Errorf("NOTES do not list objects in the watched namespace:\n%s", m.notes)
			}
		}},
		{"numeric log level", "logLevel: 3", func(t *testing.T, m manifest) {
			if v, _ := flag(manager(t, m.deployment(t)).Args, "zap-log-level"); v != "3" {
				t.Errorf("--zap-log-level = %q, want 3", v)
			}
		}},
		{"resources", "resources: {requests: {cpu: 200m, memory: 128Mi}, limits: {cpu: 1, memory: 1Gi}}", func(t *testing.T, m manifest) {
			r := manager(t, m.deployment(t)).Resources
			if !r.Requests.Cpu().Equal(resource.MustParse("200m")) || !r.Limits.Cpu().Equal(resource.MustParse("1")) ||
				!r.Requests.Memory().Equal(resource.MustParse("128Mi")) || !r.Limits.Memory().Equal(resource.MustParse("1Gi")) {
				t.Errorf("resources = %+v", r)
			}
		}},
		{"no memory limit", "resources: {limits: null}", func(t *testing.T, m manifest) {
			if c := manager(t, m.deployment(t)); len(c.Env) != 0 || c.Resources.Limits.Memory().Value() != 0 {
				t.Errorf("env = %+v, limits = %+v: want no GOMEMLIMIT without a memory limit", c.Env, c.Resources.Limits)
			}
		}},
		{"metrics off", "metrics: {enabled: false}", func(t *testing.T, m manifest) {
			c := manager(t, m.deployment(t))
			if v, _ := flag(c.Args, "metrics-bind-address"); v != "0" {
				t.Errorf("--metrics-bind-address = %q, want 0", v)
			}
			if m.get("Service", "kvop-metrics") != nil {
				t.Error("metrics Service rendered with metrics.enabled=false")
			}
			if slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" }) {
				t.Errorf("metrics port with metrics off: %+v", c.Ports)
			}
		}},
		{"metrics port and service", "metrics: {port: 9443, service: {type: NodePort, annotations: {a: b}}}", func(t *testing.T, m manifest) {
			if v, _ := flag(manager(t, m.deployment(t)).Args, "metrics-bind-address"); v != ":9443" {
				t.Errorf("--metrics-bind-address = %q", v)
			}
			var svc corev1.Service
			into(t, m.must(t, "Service", "kvop-metrics"), &svc)
			if svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.Ports[0].Port != 9443 || svc.Annotations["a"] != "b" {
				t.Errorf("Service = %+v", svc)
			}
		}},
		{"secure metrics", "metrics: {secure: true}", func(t *testing.T, m manifest) {
			if _, ok := flag(manager(t, m.deployment(t)).Args, "metrics-secure"); !ok {
				t.Error("no --metrics-secure")
			}
			var auth rbacv1.ClusterRole
			into(t, m.must(t, "ClusterRole", "kvop-metrics-auth"), &auth)
			if len(auth.Rules) != 2 || auth.Rules[0].Resources[0] != "tokenreviews" || auth.Rules[1].Resources[0] != "subjectaccessreviews" {
				t.Errorf("metrics-auth rules = %+v", auth.Rules)
			}
			m.must(t, "ClusterRoleBinding", "kvop-metrics-auth")
			m.must(t, "ClusterRole", "kvop-metrics-reader")
		}},
		{"service monitor", "metrics: {serviceMonitor: {enabled: true, namespace: monitoring, labels: {release: prom}, interval: 15s, scrapeTimeout: 5s}}", func(t *testing.T, m manifest) {
			sm := m.must(t, "ServiceMonitor", "kvop")
			if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetNamespace() != "monitoring" || sm.GetLabels()["release"] != "prom" {
				t.Errorf("ServiceMonitor %s %s labels %v", sm.GetAPIVersion(), sm.GetNamespace(), sm.GetLabels())
			}
			sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
			if svc := m.must(t, "Service", "kvop-metrics"); !labels.SelectorFromSet(sel).Matches(labels.Set(svc.GetLabels())) {
				t.Errorf("ServiceMonitor selector %v does not select the metrics Service %v", sel, svc.GetLabels())
			}
			if ns, _, _ := unstructured.NestedStringSlice(sm.Object, "spec", "namespaceSelector", "matchNames"); !slices.Equal(ns, []string{releaseNamespace}) {
				t.Errorf("namespaceSelector = %v", ns)
			}
			eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			if len(eps) != 1 {
				t.Fatalf("endpoints = %v, want one", eps)
			}
			ep := eps[0].(map[string]any)
			if got := fmt.Sprintln(ep["port"], ep["path"], ep["scheme"], ep["interval"], ep["scrapeTimeout"]); got != "metrics /metrics http 15s 5s\n" {
				t.Errorf("endpoint = %v", ep)
			}
		}},
		{"service monitor with secure metrics", "metrics: {secure: true, serviceMonitor: {enabled: true}}", func(t *testing.T, m manifest) {
			sm := m.must(t, "ServiceMonitor", "kvop")
			if sm.GetNamespace() != releaseNamespace {
				t.Errorf("ServiceMonitor namespace = %q", sm.GetNamespace())
			}
			eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			if ep := eps[0].(map[string]any); ep["scheme"] != "https" || ep["tlsConfig"] == nil || ep["bearerTokenFile"] == nil {
				t.Errorf("endpoint = %v, want https with a bearer token", ep)
			}
		}},
		{"persistence", "persistence: {enabled: true, size: 5Gi, storageClass: fast, accessMode: ReadWriteOncePod, annotations: {x: z}}", func(t *testing.T, m manifest) {
			var pvc corev1.PersistentVolumeClaim
			into(t, m.must(t, "PersistentVolumeClaim", "kvop-data"), &pvc)
			if pvc.Namespace != releaseNamespace || !pvc.Spec.Resources.Requests.Storage().Equal(resource.MustParse("5Gi")) ||
				pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "fast" ||
				!slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}) || pvc.Annotations["x"] != "z" {
				t.Errorf("PVC = %+v", pvc)
			}
			d := m.deployment(t)
			if v := volume(t, d, "data"); v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "kvop-data" {
				t.Errorf("data volume = %+v, want claim kvop-data", v.VolumeSource)
			}
			if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("strategy = %q, want Recreate with a volume", d.Spec.Strategy.Type)
			}
			if !strings.Contains(m.notes, "PersistentVolumeClaim kvop-data") {
				t.Errorf("NOTES do not name the claim:\n%s", m.notes)
			}
		}},
		{"persistence default class", "persistence: {enabled: true}", func(t *testing.T, m manifest) {
			var pvc corev1.PersistentVolumeClaim
			into(t, m.must(t, "PersistentVolumeClaim", "kvop-data"), &pvc)
			if pvc.Spec.StorageClassName != nil || !pvc.Spec.Resources.Requests.Storage().Equal(resource.MustParse("1Gi")) ||
				!slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
				t.Errorf("PVC spec = %+v, want 1Gi ReadWriteOnce in the default class", pvc.Spec)
			}
		}},
		{"persistence without provisioning", "persistence: {enabled: true, storageClass: '-'}", func(t *testing.T, m manifest) {
			var pvc corev1.PersistentVolumeClaim
			into(t, m.must(t, "PersistentVolumeClaim", "kvop-data"), &pvc)
			if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "" {
				t.Errorf("storageClassName = %v, want \"\"", pvc.Spec.StorageClassName)
			}
		}},
		{"existing claim", "persistence: {enabled: true, existingClaim: kvop-db}", func(t *testing.T, m manifest) {
			if pvcs := m.ofKind("PersistentVolumeClaim"); len(pvcs) != 0 {
				t.Errorf("PVC rendered with existingClaim: %v", m.keys())
			}
			if v := volume(t, m.deployment(t), "data"); v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "kvop-db" {
				t.Errorf("data volume = %+v, want claim kvop-db", v.VolumeSource)
			}
		}},
		{"explicit strategy", "persistence: {enabled: true}\nstrategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 0, maxUnavailable: 1}}", func(t *testing.T, m manifest) {
			s := m.deployment(t).Spec.Strategy
			if s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil || s.RollingUpdate.MaxUnavailable.IntValue() != 1 {
				t.Errorf("strategy = %+v", s)
			}
		}},
		{"security contexts", "podSecurityContext: {runAsNonRoot: true, runAsUser: 1000}\nsecurityContext: {readOnlyRootFilesystem: false}", func(t *testing.T, m manifest) {
			d := m.deployment(t)
			if psc := d.Spec.Template.Spec.SecurityContext; *psc.RunAsUser != 1000 {
				t.Errorf("pod securityContext = %+v", psc)
			}
			if sc := manager(t, d).SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || *sc.ReadOnlyRootFilesystem {
				t.Errorf("container securityContext = %+v", sc)
			}
		}},
		{"scheduling", `
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}]
affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 100, podAffinityTerm: {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app.kubernetes.io/name: kvop}}}}]}}
priorityClassName: system-cluster-critical
podAnnotations: {prometheus.io/scrape: "true"}
podLabels: {team: platform}
`, func(t *testing.T, m manifest) {
			d := m.deployment(t)
			p := d.Spec.Template.Spec
			if p.NodeSelector["kubernetes.io/os"] != "linux" || len(p.Tolerations) != 1 || p.Tolerations[0].Value != "infra" ||
				p.Affinity == nil || p.Affinity.PodAntiAffinity == nil || p.PriorityClassName != "system-cluster-critical" {
				t.Errorf("pod spec scheduling = %+v %+v %+v %q", p.NodeSelector, p.Tolerations, p.Affinity, p.PriorityClassName)
			}
			if d.Spec.Template.Annotations["prometheus.io/scrape"] != "true" || d.Spec.Template.Labels["team"] != "platform" {
				t.Errorf("pod metadata = %+v", d.Spec.Template.ObjectMeta)
			}
			if _, ok := d.Spec.Selector.MatchLabels["team"]; ok {
				t.Error("podLabels leaked into the immutable selector")
			}
		}},
		{"existing service account", "serviceAccount: {create: false, name: kvop-sa}", func(t *testing.T, m manifest) {
			if sas := m.ofKind("ServiceAccount"); len(sas) != 0 {
				t.Errorf("ServiceAccount rendered with create=false: %v", m.keys())
			}
			if n := m.deployment(t).Spec.Template.Spec.ServiceAccountName; n != "kvop-sa" {
				t.Errorf("serviceAccountName = %q", n)
			}
			var b rbacv1.ClusterRoleBinding
			into(t, m.must(t, "ClusterRoleBinding", "kvop-manager"), &b)
			if b.Subjects[0].Name != "kvop-sa" {
				t.Errorf("binding subject = %+v", b.Subjects)
			}
		}},
		{"service account name and annotations", "serviceAccount: {name: custom, annotations: {iam.example/role: kvop}}", func(t *testing.T, m manifest) {
			sa := m.must(t, "ServiceAccount", "custom")
			if sa.GetAnnotations()["iam.example/role"] != "kvop" {
				t.Errorf("ServiceAccount annotations = %v", sa.GetAnnotations())
			}
			if n := m.deployment(t).Spec.Template.Spec.ServiceAccountName; n != "custom" {
				t.Errorf("serviceAccountName = %q", n)
			}
		}},
		{"no rbac", "rbac: {create: false}\nmetrics: {secure: true}", func(t *testing.T, m manifest) {
			for _, kind := range []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
				if os := m.ofKind(kind); len(os) != 0 {
					t.Errorf("%d %s rendered with rbac.create=false", len(os), kind)
				}
			}
		}},
		{"namespaced rbac", "watchNamespace: apps\nrbac: {namespaced: true}", func(t *testing.T, m manifest) {
			if m.get("ClusterRoleBinding", "kvop-manager") != nil {
				t.Error("manager rules bound cluster-wide with rbac.namespaced")
			}
			var rb rbacv1.RoleBinding
			into(t, m.must(t, "RoleBinding", "kvop-manager"), &rb)
			if rb.Namespace != "apps" || rb.RoleRef.Kind != "ClusterRole" || rb.RoleRef.Name != "kvop-manager" {
				t.Errorf("RoleBinding = %+v", rb)
			}
			var cr rbacv1.ClusterRole
			into(t, m.must(t, "ClusterRole", "kvop-cluster-id"), &cr)
			if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].ResourceNames, []string{"kube-system"}) {
				t.Errorf("cluster-id rules = %+v", cr.Rules)
			}
			m.must(t, "ClusterRoleBinding", "kvop-cluster-id")
		}},
		{"namespaced rbac with cluster id", "watchNamespace: apps\nclusterId: c1\nrbac: {namespaced: true}", func(t *testing.T, m manifest) {
			if m.get("ClusterRole", "kvop-cluster-id") != nil || m.get("ClusterRoleBinding", "kvop-cluster-id") != nil {
				t.Error("kube-system reader rendered although clusterId is set")
			}
		}},
		{"no aggregated roles", "rbac: {aggregateToDefaultRoles: false}", func(t *testing.T, m manifest) {
			if m.get("ClusterRole", "kvop-edit") != nil || m.get("ClusterRole", "kvop-view") != nil {
				t.Error("aggregated roles rendered")
			}
		}},
		{"long fullname", "fullnameOverride: " + strings.Repeat("k", 70), func(t *testing.T, m manifest) {
			for _, o := range m.objs {
				if o.GetKind() != "CustomResourceDefinition" && (len(o.GetName()) > 63 || strings.HasSuffix(o.GetName(), "-")) {
					t.Errorf("%s: name longer than 63 characters or ending in '-'", key(o))
				}
			}
			if m.get("Service", strings.Repeat("k", 63-len("-metrics"))+"-metrics") == nil {
				t.Errorf("metrics Service not named <truncated fullname>-metrics: %v", m.keys())
			}
		}},
		{"name override", "nameOverride: store", func(t *testing.T, m manifest) {
			d := m.must(t, "Deployment", "kvop-store")
			if d.GetLabels()["app.kubernetes.io/name"] != "store" {
				t.Errorf("labels = %v", d.GetLabels())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, render(t, tt.values))
		})
	}
}

// TestConflictingValues: the chart's helpers refuse values that contradict each other.
func TestConflictingValues(t *testing.T) {
	tests := []struct{ name, values, want string }{
		{"replicas without leader election", "replicas: 2\nleaderElection: {enabled: false}", "replicas: 2 needs leaderElection.enabled: true"},
		{"service monitor without metrics", "metrics: {enabled: false, serviceMonitor: {enabled: true}}", "metrics.serviceMonitor.enabled: true needs metrics.enabled: true"},
		{"existing claim without persistence", "persistence: {existingClaim: data}", "persistence.existingClaim is set but persistence.enabled is false"},
		{"namespaced rbac without a namespace", "rbac: {namespaced: true}", "rbac.namespaced: true needs watchNamespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderE(t, tt.values)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("render error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestSchemaRejects: values.schema.json refuses wrong values before anything renders.
func TestSchemaRejects(t *testing.T) {
	tests := []struct{ name, values, path string }{
		{"zero replicas", "replicas: 0", "/replicas"},
		{"negative replicas", "replicas: -1", "/replicas"},
		{"fractional replicas", "replicas: 1.5", "/replicas"},
		{"replicas as string", "replicas: two", "/replicas"},
		{"unknown pull policy", "image: {pullPolicy: Sometimes}", "/image/pullPolicy"},
		{"numeric image tag", "image: {tag: 1.2}", "/image/tag"},
		{"empty repository", "image: {repository: ''}", "/image/repository"},
		{"bad digest", "image: {digest: latest}", "/image/digest"},
		{"negative size", "persistence: {enabled: true, size: -1Gi}", "/persistence/size"},
		{"zero size", "persistence: {enabled: true, size: 0Gi}", "/persistence/size"},
		{"size without unit syntax", "persistence: {enabled: true, size: big}", "/persistence/size"},
		{"numeric size", "persistence: {enabled: true, size: 5}", "/persistence/size"},
		{"unknown access mode", "persistence: {accessMode: ReadOnlyMany}", "/persistence/accessMode"},
		{"persistence as string", "persistence: 'yes'", "/persistence"},
		{"negative cpu", "resources: {requests: {cpu: -100m}}", "/resources/requests/cpu"},
		{"resources typo", "resources: {request: {cpu: 100m}}", "/resources"},
		{"bad probe interval", "probeInterval: fast", "/probeInterval"},
		{"negative probe interval", "probeInterval: -5s", "/probeInterval"},
		{"numeric probe interval", "probeInterval: 30", "/probeInterval"},
		{"unknown log level", "logLevel: verbose", "/logLevel"},
		{"zero log level", "logLevel: 0", "/logLevel"},
		{"unknown log format", "logFormat: text", "/logFormat"},
		{"extra args not a list", "extraArgs: --foo", "/extraArgs"},
		{"extra args not strings", "extraArgs: [1]", "/extraArgs/0"},
		{"metrics port out of range", "metrics: {port: 70000}", "/metrics/port"},
		{"metrics port as string", "metrics: {port: '8080'}", "/metrics/port"},
		{"health port zero", "healthProbe: {port: 0}", "/healthProbe/port"},
		{"bad service type", "metrics: {service: {type: ExternalName}}", "/metrics/service/type"},
		{"bad scrape interval", "metrics: {serviceMonitor: {interval: often}}", "/metrics/serviceMonitor/interval"},
		{"crds flag as string", "crds: {enabled: 'true'}", "/crds/enabled"},
		{"service account create as string", "serviceAccount: {create: 'yes'}", "/serviceAccount/create"},
		{"rbac flag as number", "rbac: {create: 1}", "/rbac/create"},
		{"tolerations as map", "tolerations: {key: a}", "/tolerations"},
		{"node selector values not strings", "nodeSelector: {zone: 1}", "/nodeSelector/zone"},
		{"strategy type", "strategy: {type: BlueGreen}", "/strategy/type"},
		{"unknown top-level key", "replica: 2", "replica"},
		{"unknown nested key", "leaderElection: {enable: true}", "enable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderE(t, tt.values)
			if err == nil {
				t.Fatalf("values %q accepted, want a schema error at %s", tt.values, tt.path)
			}
			if msg := err.Error(); !strings.Contains(msg, "values don't meet the specifications of the schema") || !strings.Contains(msg, tt.path) {
				t.Fatalf("error = %v\nwant a schema error naming %s", err, tt.path)
			}
		})
	}
}

// allOn turns every optional part of the chart on at once.
const allOn = `
replicas: 2
watchNamespace: apps
clusterId: c1
metrics: {secure: true, serviceMonitor: {enabled: true}}
persistence: {enabled: true, storageClass: standard}
rbac: {namespaced: true}
serviceAccount: {annotations: {a: b}}
extraArgs: ["--zap-devel=false"]
`

// TestLint runs Helm's linter (`helm lint --strict`) with the defaults and with everything on.
func TestLint(t *testing.T) {
	for name, values := range map[string]string{"defaults": "", "everything on": allOn} {
		t.Run(name, func(t *testing.T) {
			l := lint.AllWithKubeVersion(chartDir(), parseValues(t, values), releaseNamespace, &kubeVersion)
			for _, msg := range l.Messages {
				if msg.Severity >= support.WarningSev {
					t.Errorf("helm lint: %v", msg)
				} else {
					t.Logf("helm lint: %v", msg)
				}
			}
		})
	}
}

func TestNotes(t *testing.T) {
	m := render(t, "")
	t.Logf("NOTES.txt:\n%s", m.notes)
	for _, want := range []string{
		"release kvop in namespace kvop-system",
		"Deployment kvop (1 replica(s), image kvop/manager:0.1.0, leader election on)",
		"KVEndpoint (kve), Registration (kreg) and LeaderLease (klease), kept on uninstall",
		"kubectl -n kvop-system rollout status deployment/kvop",
		"kind: KVEndpoint",
		"backend: boltdb",
		"path: /var/lib/kvop/kvop.db",
		"kubectl get kve,kreg,klease --all-namespaces",
		"emptyDir",
	} {
		if !strings.Contains(m.notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, m.notes)
		}
	}
	// The sample in the NOTES is a heredoc of one valid KVEndpoint, its terminator at column 0.
	start := strings.Index(m.notes, "<<'EOF'\n")
	end := strings.Index(m.notes, "\nEOF\n")
	if start < 0 || end < start {
		t.Fatalf("no sample KVEndpoint heredoc in NOTES:\n%s", m.notes)
	}
	sample := m.notes[start+len("<<'EOF'\n") : end]
	objs, err := decodeYAML(sample)
	if err != nil || len(objs) != 1 || objs[0].GetKind() != "KVEndpoint" {
		t.Fatalf("NOTES sample does not parse as one KVEndpoint (%v): %q", err, sample)
	}
	// It is the first sample of config/samples (the one TestInstall creates).
	want := readConfig(t, "config/samples/kvop_v1_kvendpoint.yaml")[0]
	if !reflect.DeepEqual(objs[0].Object["spec"], want.Object["spec"]) || objs[0].GetName() != want.GetName() {
		t.Errorf("NOTES sample %v differs from config/samples/kvop_v1_kvendpoint.yaml %v", objs[0].Object, want.Object)
	}
}
