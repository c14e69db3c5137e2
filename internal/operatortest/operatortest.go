// Package operatortest runs kvop's controllers against a real Kubernetes API server (envtest)
// and real backends (internal/backendtest), for the controller tests.
//
//	func TestMain(m *testing.M) { operatortest.Main(m) }
//
//	func TestX(t *testing.T) {
//		ns := operatortest.Namespace(t)
//		operatortest.StartManager(t, ns)
//		...
//	}
//
// Each test gets a namespace of its own and a manager restricted to it, so tests run in
// parallel and a test may stop and restart "its" manager without touching the others. There is
// no kubelet: tests create Pods and set their IP and Ready condition through the status
// subresource (SetPodReady).
package operatortest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers"
	"github.com/kvop/kvop/controllers/storepool"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/testservers"
)

// ClusterID is the cluster id the test managers use.
const ClusterID = "test-cluster"

var (
	// Kube is the shared API server, started by Main.
	Kube *testservers.Kube
	// Client is a client of Kube that knows kvop's kinds.
	Client client.Client
	// Scheme knows client-go's and kvop's kinds.
	Scheme = k8sruntime.NewScheme()
)

func init() {
	_ = clientgoscheme.AddToScheme(Scheme)
	_ = kvopv1.AddToScheme(Scheme)
}

// RepoRoot is the kvop checkout.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Main starts the API server (with kvop's CRDs), runs the tests, and stops every server.
func Main(m *testing.M) {
	backendtest.RunChildIfRequested()
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(logSink())))
	var err error
	Kube, err = testservers.StartKube(testservers.KubeOptions{
		CRDDirectoryPaths: []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		Scheme:            Scheme,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "operatortest:", err)
		os.Exit(1)
	}
	Client = Kube.Client
	code := backendtest.Run(m)
	if err := Kube.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "operatortest: stopping the API server:", err)
	}
	os.Exit(code)
}

// logSink is where controller logs go: stderr with KVOP_TEST_LOGS=1, else nowhere (they are
// loud, and a failing test says what it waited for).
func logSink() *os.File {
	if os.Getenv("KVOP_TEST_LOGS") != "" {
		return os.Stderr
	}
	f, _ := os.Open(os.DevNull)
	return f
}

var nsCounter atomic.Int64

// Namespace creates a namespace for the test.
func Namespace(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return name
}

// Manager is a running kvop manager restricted to one namespace.
type Manager struct {
	Pool *storepool.Pool
	// Elected is closed once the manager leads (at once without leader election).
	Elected <-chan struct{}
	cancel  context.CancelFunc
	done    chan error
	exited  chan struct{} // closed when the manager's Start returned
	err     error         // what Start returned, once exited is closed
}

// Stop stops the manager and waits until it has stopped (its stores are closed).
func (m *Manager) Stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	<-m.done
	m.cancel = nil
}

// Exited reports whether the manager's Start has returned (and with what) although nobody
// stopped it: a manager that gives up by itself — a crash, a lost leader election — is a
// failure for fault tests.
func (m *Manager) Exited() (bool, error) {
	select {
	case <-m.exited:
		return true, m.err
	default:
		return false, nil
	}
}

// ManagerOptions tune StartManagerWith; the zero value is what StartManager runs.
type ManagerOptions struct {
	// Config is the API server connection (nil: Kube.Config, an administrator), e.g. a user's
	// from Kube.Env.AddUser to run the controllers with only the permissions of a role.
	Config *rest.Config
	// LeaderElection runs the controllers only while this manager holds the Lease
	// LeaderElectionID in the test's namespace, with short durations so that a handover takes
	// seconds, and the release on stop that cmd/manager uses.
	LeaderElection   bool
	LeaderElectionID string // default "kvop-manager.kvop.io"
	// Logger replaces the controllers' logger (default: the one Main set).
	Logger *logr.Logger
}

// Leader election durations of StartManagerWith: seconds, not the production defaults'
// minute, so that a handover test is quick.
const (
	LeaseDuration = 4 * time.Second
	RenewDeadline = 3 * time.Second
	RetryPeriod   = 500 * time.Millisecond
)

// StartManager runs kvop's controllers for namespace until the test ends (or Stop).
func StartManager(t testing.TB, namespace string) *Manager {
	t.Helper()
	return StartManagerWith(t, namespace, ManagerOptions{})
}

// StartManagerWith is StartManager with options.
func StartManagerWith(t testing.TB, namespace string, opts ManagerOptions) *Manager {
	t.Helper()
	cfg := opts.Config
	if cfg == nil {
		cfg = Kube.Config
	}
	mopts := ctrl.Options{
		Scheme:                 Scheme,
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{namespace: {}}},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	}
	if opts.LeaderElection {
		id := opts.LeaderElectionID
		if id == "" {
			id = "kvop-manager.kvop.io"
		}
		lease, renew, retry := LeaseDuration, RenewDeadline, RetryPeriod
		mopts.LeaderElection = true
		mopts.LeaderElectionID = id
		mopts.LeaderElectionNamespace = namespace
		mopts.LeaderElectionReleaseOnCancel = true
		mopts.LeaseDuration, mopts.RenewDeadline, mopts.RetryPeriod = &lease, &renew, &retry
	}
	if opts.Logger != nil {
		mopts.Logger = *opts.Logger
	}
	controllers.ConfigureManager(&mopts)
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if opts.Logger != nil {
		// The controllers log through the context's logger, which the manager sets from its own;
		// Setup's own messages go here.
		ctx = logf.IntoContext(ctx, *opts.Logger)
	}
	pool, err := controllers.Setup(ctx, mgr, controllers.Options{
		ClusterID: ClusterID, ProbeInterval: 2 * time.Second, SkipNameValidation: true,
	})
	if err != nil {
		cancel()
		t.Fatalf("controllers: %v", err)
	}
	m := &Manager{Pool: pool, Elected: mgr.Elected(), cancel: cancel, done: make(chan error, 1), exited: make(chan struct{})}
	go func() {
		m.err = mgr.Start(ctx)
		close(m.exited)
		m.done <- m.err
	}()
	t.Cleanup(m.Stop)
	return m
}

// CreatePod creates a pod (that never runs: there is no kubelet).
func CreatePod(t testing.TB, namespace, name string, labels map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{
			Name: "app", Image: "registry.invalid/app:1", Ports: ports,
		}}},
	}
	if err := Client.Create(context.Background(), pod); err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
	return pod
}

// SetPodReady sets the pod's IP and Ready condition through the status subresource, as the
// kubelet would.
func SetPodReady(t testing.TB, pod *corev1.Pod, ip string, ready bool) {
	t.Helper()
	ctx := context.Background()
	if err := Client.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
		t.Fatalf("getting pod %s: %v", pod.Name, err)
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
	if err := Client.Status().Update(ctx, pod); err != nil {
		t.Fatalf("updating pod %s status: %v", pod.Name, err)
	}
}

// Eventually polls cond until it returns true or timeout passes, then fails with its last
// explanation.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// EndpointSpec returns a KVEndpoint spec for a backend target (boltdb: its file).
func EndpointSpec(tg *backendtest.Target, prefix string) kvopv1.KVEndpointSpec {
	spec := kvopv1.KVEndpointSpec{Backend: kvopv1.Backend(tg.Backend), Prefix: prefix,
		ConnectionTimeout: &metav1.Duration{Duration: 5 * time.Second}}
	if tg.SingleProcess {
		spec.Path = tg.Addrs[0]
	} else {
		spec.Endpoints = tg.Addrs
	}
	return spec
}

// CreateEndpoint creates a KVEndpoint named name for tg and returns it.
func CreateEndpoint(t testing.TB, namespace, name string, tg *backendtest.Target, prefix string) *kvopv1.KVEndpoint {
	t.Helper()
	e := &kvopv1.KVEndpoint{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Spec: EndpointSpec(tg, prefix)}
	if err := Client.Create(context.Background(), e); err != nil {
		t.Fatalf("creating KVEndpoint: %v", err)
	}
	return e
}
