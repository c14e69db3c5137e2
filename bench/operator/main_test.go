//go:build bench

package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/bench/internal/results"
	"github.com/kvop/kvop/internal/operatortest"
)

func TestMain(m *testing.M) {
	klog.SetLogger(logr.Discard())
	operatortest.Main(m)
}

// The harness's results (BENCH_OPERATOR_OUT), shared with bench/cmd/benchreport.
type (
	File       = results.OperatorFile
	LatencyRun = results.OperatorLatency
	ScaleRun   = results.OperatorScale
)

type config struct {
	out      string
	pods     []int
	backends []string
	workers  int
	parts    string
	scale    string
	regs     int
	podsPer  int
	memLimit string // GOMEMLIMIT of the manager processes ("" for none)
}

func loadConfig(t *testing.T) config {
	c := config{out: os.Getenv("BENCH_OPERATOR_OUT"), pods: []int{100}, backends: []string{"etcd", "boltdb"},
		workers: 8, parts: "latency,scale", scale: "small", regs: 100, podsPer: 10,
		memLimit: os.Getenv("BENCH_OPERATOR_MEMLIMIT")}
	if v := os.Getenv("BENCH_OPERATOR_PODS"); v != "" {
		c.pods = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				t.Fatalf("BENCH_OPERATOR_PODS=%q: want comma-separated counts", v)
			}
			c.pods = append(c.pods, n)
		}
	}
	if v := os.Getenv("BENCH_OPERATOR_BACKENDS"); v != "" {
		c.backends = strings.Split(v, ",")
	}
	if v := os.Getenv("BENCH_OPERATOR_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("BENCH_OPERATOR_WORKERS=%q", v)
		}
		c.workers = n
	}
	if v := os.Getenv("BENCH_OPERATOR_PARTS"); v != "" {
		c.parts = v
	}
	switch v := os.Getenv("BENCH_OPERATOR_SCALE"); v {
	case "", "small":
	case "full":
		c.scale, c.regs = "full", 1000
	case "off":
		c.scale = "off"
	default:
		r, p, ok := strings.Cut(v, "x")
		var err1, err2 error
		c.regs, err1 = strconv.Atoi(r)
		c.podsPer, err2 = strconv.Atoi(p)
		if !ok || err1 != nil || err2 != nil || c.regs < 1 || c.podsPer < 1 {
			t.Fatalf("BENCH_OPERATOR_SCALE=%q: want small, full, off or RxP", v)
		}
		c.scale = "custom"
	}
	return c
}

func (c config) want(part string) bool { return strings.Contains(","+c.parts+",", ","+part+",") }

// TestOperator runs both parts and writes their results.
func TestOperator(t *testing.T) {
	c := loadConfig(t)
	f := &File{Started: time.Now().UTC(), Settings: map[string]string{
		"pods": fmt.Sprint(c.pods), "backends": strings.Join(c.backends, ","), "workers": strconv.Itoa(c.workers),
		"scale": c.scale, "parts": c.parts, "commit": commit(),
	}}
	defer func() {
		raw, _ := json.MarshalIndent(f, "", "  ")
		if c.out != "" {
			if err := os.WriteFile(c.out, append(raw, '\n'), 0o644); err != nil {
				t.Errorf("writing %s: %v", c.out, err)
			}
		}
	}()
	if c.want("latency") {
		for _, b := range c.backends {
			for _, n := range c.pods {
				run := &LatencyRun{Backend: b, Pods: n, Workers: c.workers}
				f.Latency = append(f.Latency, run)
				t.Run(fmt.Sprintf("latency/%s/%d", b, n), func(t *testing.T) { measureLatency(t, c, run) })
			}
		}
	}
	if c.want("scale") && c.scale != "off" {
		f.Scale = &ScaleRun{Mode: c.scale, Backend: "etcd", Registrations: c.regs, PodsPer: c.podsPer, Pods: c.regs * c.podsPer,
			MemLimit: c.memLimit}
		t.Run("scale", func(t *testing.T) { measureScale(t, c, f.Scale) })
	}
}

// commit names the checkout measured (marked when pkg, internal, controllers or cmd differ from it).
func commit() string {
	root := operatortest.RepoRoot()
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	dirty, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--",
		"pkg", "internal", "controllers", "cmd", "api").Output()
	if len(strings.TrimSpace(string(dirty))) > 0 {
		c += " (uncommitted changes)"
	}
	return c
}

// fastClient is a client of the API server without client-go's default 5 QPS limit, so that
// the harness can create and update thousands of objects quickly.
func fastClient(t testing.TB) client.Client {
	t.Helper()
	cfg := *operatortest.Kube.Config
	cfg.QPS, cfg.Burst = 2000, 4000
	c, err := client.New(&cfg, client.Options{Scheme: operatortest.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const port = 8080

// podIP is the IP of pod i (unique up to 2^24 pods).
func podIP(i int) string { return fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255) }

func newPod(ns, name, app string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{
			Name: "app", Image: "registry.invalid/app:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port}},
		}}},
	}
}

// markReady sets the pod's IP and Ready condition through the status subresource (the pod as
// created: its resourceVersion is current, nobody else writes pods).
func markReady(ctx context.Context, c client.Client, pod *corev1.Pod, ip string) error {
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	return c.Status().Update(ctx, pod)
}

func newRegistration(ns, name, app, endpoint string) *kvopv1.Registration {
	return &kvopv1.Registration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: kvopv1.RegistrationSpec{
			EndpointRef: kvopv1.LocalObjectReference{Name: endpoint},
			Selector:    metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Port:        intstr.FromInt32(port),
			TTL:         &metav1.Duration{Duration: 60 * time.Second},
		},
	}
}

// parallel runs fn(i) for i in [0, n) on workers goroutines and returns the first error.
func parallel(n, workers int, fn func(i int) error) error {
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		next  = make(chan int)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
