//go:build bench

package operator

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/operatortest"
	"github.com/kvop/kvop/pkg/discovery"
	"github.com/kvop/kvop/pkg/kvstore"
)

// measureScale runs the real manager binary at R Registrations × P pods (see the package doc).
func measureScale(t *testing.T, c config, run *ScaleRun) {
	defer func() {
		if t.Failed() && run.Error == "" {
			run.Error = "harness failed (see the log)"
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	work := t.TempDir()
	logDir := work
	if d := os.Getenv("BENCH_OPERATOR_LOGDIR"); d != "" {
		logDir = d
	}

	bin := filepath.Join(work, "manager")
	build := exec.Command("go", "build", "-o", bin, "./cmd/manager")
	build.Dir = operatortest.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building cmd/manager: %v\n%s", err, out)
	}
	user, err := operatortest.Kube.Env.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("envtest user: %v", err)
	}
	kcfg, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(work, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kcfg, 0o600); err != nil {
		t.Fatal(err)
	}

	kc := fastClient(t)
	tg := backendtest.Get(t, kvstore.Etcd)
	ns := operatortest.Namespace(t)
	prefix := "bench/" + ns
	operatortest.CreateEndpoint(t, ns, "kv", tg, prefix)
	store := tg.Open(t)
	registry := discovery.NewRegistry(store, prefix)
	R, P := run.Registrations, run.PodsPer

	m1 := startManager(t, bin, kubeconfig, ns, c.memLimit, filepath.Join(logDir, "manager-1.log"))
	defer m1.stop(t)

	// Setup: Registrations, pods (not Ready), then every pod Ready.
	setupStart := time.Now()
	if err := parallel(R, 16, func(r int) error {
		reg := newRegistration(ns, fmt.Sprintf("reg%04d", r), fmt.Sprintf("app%04d", r), "kv")
		reg.Spec.Service = fmt.Sprintf("svc%04d", r)
		return kc.Create(ctx, reg)
	}); err != nil {
		t.Fatalf("creating Registrations: %v", err)
	}
	pods := make([]*corev1.Pod, R*P)
	if err := parallel(R*P, 16, func(i int) error {
		pods[i] = newPod(ns, fmt.Sprintf("p%06d", i), fmt.Sprintf("app%04d", i/P))
		return kc.Create(ctx, pods[i])
	}); err != nil {
		t.Fatalf("creating pods: %v", err)
	}
	t.Logf("created %d Registrations and %d pods in %s", R, R*P, time.Since(setupStart).Round(time.Millisecond))
	readyStart := time.Now()
	if err := parallel(R*P, 16, func(i int) error { return markReady(ctx, kc, pods[i], podIP(i)) }); err != nil {
		t.Fatalf("marking pods Ready: %v", err)
	}
	run.Setup = time.Since(setupStart)
	t.Logf("marked %d pods Ready in %s", R*P, time.Since(readyStart).Round(time.Millisecond))

	timeout := 5*time.Minute + time.Duration(R*P)*20*time.Millisecond
	if err := waitEntries(ctx, registry, R, P, timeout); err != nil {
		run.Error = "first start: " + err.Error()
		t.Fatal(run.Error)
	}
	if err := waitStatus(ctx, kc, ns, R, P, timeout); err != nil {
		run.Error = "first start: " + err.Error()
		t.Fatal(run.Error)
	}
	run.Registered = time.Since(readyStart)
	t.Logf("all %d entries registered and %d Registrations Ready %s after the first pod was marked Ready", R*P, R, run.Registered.Round(time.Millisecond))
	// A moment for the work queue to drain the last status echoes before reading the totals.
	time.Sleep(2 * time.Second)
	if run.Reconciles, err = m1.reconciles(); err != nil {
		t.Errorf("metrics: %v", err)
	}
	run.HWM = m1.hwm()
	m1.stop(t)
	run.MaxRSS = m1.maxRSS()
	t.Logf("first manager: max VmRSS %d MiB, VmHWM %d MiB, reconciles %v", run.MaxRSS>>20, run.HWM>>20, run.Reconciles)

	// Full resync: every entry gone from the backend, a new process must write them all again.
	if err := store.DeleteTree(ctx, strings.TrimSuffix(discovery.ServiceDir(prefix, ""), "/")); err != nil {
		t.Fatalf("wiping the service tree: %v", err)
	}
	if entries, err := registry.Entries(ctx, "svc0000"); err != nil || len(entries) != 0 {
		t.Fatalf("after the wipe svc0000 holds %d entries (%v)", len(entries), err)
	}
	m2 := startManager(t, bin, kubeconfig, ns, c.memLimit, filepath.Join(logDir, "manager-2.log"))
	defer m2.stop(t)
	if err := waitEntries(ctx, registry, R, P, timeout); err != nil {
		run.Error = "after restart: " + err.Error()
		t.Fatal(run.Error)
	}
	run.Resync = time.Since(m2.started)
	if err := waitStatus(ctx, kc, ns, R, P, timeout); err != nil {
		run.Error = "after restart: " + err.Error()
		t.Fatal(run.Error)
	}
	time.Sleep(2 * time.Second)
	if run.ResyncRecon, err = m2.reconciles(); err != nil {
		t.Errorf("metrics: %v", err)
	}
	run.ResyncHWM = m2.hwm()
	t.Logf("restart: every entry back %s after the process started; VmHWM %d MiB, reconciles %v", run.Resync.Round(time.Millisecond), run.ResyncHWM>>20, run.ResyncRecon)
}

// waitEntries waits until every service svcNNNN holds P entries in the backend.
func waitEntries(ctx context.Context, registry *discovery.Registry, R, P int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	done := make([]bool, R)
	left := R
	for {
		lastWhy := ""
		for r := 0; r < R; r++ {
			if done[r] {
				continue
			}
			entries, err := registry.Entries(ctx, fmt.Sprintf("svc%04d", r))
			if err == nil && len(entries) == P {
				done[r] = true
				left--
				continue
			}
			lastWhy = fmt.Sprintf("svc%04d holds %d entries (%v)", r, len(entries), err)
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s, %d of %d services incomplete, e.g. %s", timeout, left, R, lastWhy)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitStatus waits until every Registration reports Ready with P endpoints.
func waitStatus(ctx context.Context, kc client.Client, ns string, R, P int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		list := &kvopv1.RegistrationList{}
		ready := 0
		err := kc.List(ctx, list, client.InNamespace(ns))
		if err == nil {
			for _, reg := range list.Items {
				if apimeta.IsStatusConditionTrue(reg.Status.Conditions, kvopv1.ConditionReady) && reg.Status.Endpoints == int32(P) &&
					reg.Status.ObservedGeneration == reg.Generation {
					ready++
				}
			}
			if ready == R {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s, %d of %d Registrations Ready with %d endpoints (%v)", timeout, ready, R, P, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// managerProc is one run of bin/manager with an RSS sampler.
type managerProc struct {
	cmd     *exec.Cmd
	metrics string
	started time.Time
	log     string

	mu      sync.Mutex
	max     int64
	stopped bool
	exited  chan struct{}
}

// startManager runs the manager binary; memLimit ("" for none) becomes its GOMEMLIMIT, as the
// chart derives it from the container's memory limit.
func startManager(t *testing.T, bin, kubeconfig, ns, memLimit, logPath string) *managerProc {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--namespace="+ns, "--metrics-bind-address="+addr, "--health-probe-bind-address=0",
		"--cluster-id=bench", "--probe-interval=30s")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	if memLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+memLimit) // the last of a duplicate wins
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	m := &managerProc{cmd: cmd, metrics: "http://" + addr + "/metrics", log: logPath, exited: make(chan struct{})}
	m.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the manager: %v", err)
	}
	go func() { _ = cmd.Wait(); logf.Close(); close(m.exited) }()
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.exited:
				return
			case <-tick.C:
				if v := procStatus(cmd.Process.Pid, "VmRSS"); v > 0 {
					m.mu.Lock()
					m.max = max(m.max, v)
					m.mu.Unlock()
				}
			}
		}
	}()
	return m
}

func (m *managerProc) maxRSS() int64 { m.mu.Lock(); defer m.mu.Unlock(); return m.max }

// hwm is the kernel's peak RSS of the process (VmHWM), read while it runs.
func (m *managerProc) hwm() int64 { return procStatus(m.cmd.Process.Pid, "VmHWM") }

// stop sends SIGTERM and waits for the manager to exit (SIGKILL after 30 s).
func (m *managerProc) stop(t *testing.T) {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	m.stopped = true
	m.mu.Unlock()
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("manager did not exit 30 s after SIGTERM; killing it (log: %s)", m.log)
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

// procStatus returns a "kB" field of /proc/<pid>/status in bytes (0 when unreadable).
func procStatus(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return n << 10
	}
	return 0
}

var reconcileLine = regexp.MustCompile(`^controller_runtime_reconcile_total\{([^}]*)\}\s+(\S+)`)
var labelPair = regexp.MustCompile(`(\w+)="([^"]*)"`)

// reconciles reads controller_runtime_reconcile_total from the manager's /metrics, by
// controller and result.
func (m *managerProc) reconciles() (map[string]map[string]float64, error) {
	resp, err := http.Get(m.metrics)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		mm := reconcileLine.FindStringSubmatch(line)
		if mm == nil {
			continue
		}
		labels := map[string]string{}
		for _, lp := range labelPair.FindAllStringSubmatch(mm[1], -1) {
			labels[lp[1]] = lp[2]
		}
		v, err := strconv.ParseFloat(mm[2], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		if out[labels["controller"]] == nil {
			out[labels["controller"]] = map[string]float64{}
		}
		out[labels["controller"]][labels["result"]] = v
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no controller_runtime_reconcile_total in %s", m.metrics)
	}
	return out, nil
}
