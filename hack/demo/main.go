// Command demo shows kvop working on a machine with nothing but Go and Debian packages: it
// starts a local control plane (kube-apiserver and etcd, the ones the tests use), installs the
// CRDs with kubectl, runs the manager, registers ready pods into the embedded BoltDB store and
// elects a leader among them, then moves the leadership by making the leader not Ready.
//
// Run it with `make demo` (which builds the binaries and tools first). It waits for Enter
// between steps; DEMO_NONINTERACTIVE=1 runs it start to end and exits non-zero if a step fails.
// Ctrl-C stops it at any time and cleans everything up.
package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/internal/testservers"
)

const namespace = "demo"

// demo holds what the steps share.
type demo struct {
	root, bin, work string
	kubeconfig      string
	kubectl         string
	dbPath          string
	metricsAddr     string
	interactive     bool
	c               client.Client
	manager         *exec.Cmd
	managerDone     chan struct{}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		if ctx.Err() != nil {
			fmt.Println("\ninterrupted: everything is cleaned up")
			os.Exit(130)
		}
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	root, _ := os.Getwd()
	d := &demo{root: root, bin: filepath.Join(root, "bin"), interactive: os.Getenv("DEMO_NONINTERACTIVE") == ""}
	var err error
	if d.work, err = os.MkdirTemp("", "kvop-demo-"); err != nil {
		return err
	}
	defer os.RemoveAll(d.work)
	d.dbPath = filepath.Join(d.work, "kvop.db")
	if d.kubectl, err = testservers.Kubectl(); err != nil {
		return err
	}

	step(1, "Starting a local control plane: kube-apiserver %s and etcd (no kubelet, no containers)", "v1.37.2")
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = kvopv1.AddToScheme(scheme)
	kube, err := testservers.StartKube(testservers.KubeOptions{Scheme: scheme})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("==> Stopping the control plane")
		_ = kube.Stop()
	}()
	d.c = kube.Client
	if err := d.writeKubeconfig(kube.Env); err != nil {
		return err
	}
	fmt.Printf("    API server at %s\n    export KUBECONFIG=%s   # to use kubectl yourself while the demo runs\n", kube.Config.Host, d.kubeconfig)

	if err := d.pause(ctx); err != nil {
		return err
	}
	step(2, "Installing kvop's CRDs with kubectl apply")
	if err := d.sh(ctx, d.kubectl, "apply", "-f", filepath.Join(root, "config", "crd", "bases")); err != nil {
		return err
	}
	if err := d.sh(ctx, d.kubectl, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/kvendpoints.kvop.io", "crd/registrations.kvop.io", "crd/leaderleases.kvop.io"); err != nil {
		return err
	}

	step(3, "Starting the kvop manager (bin/manager)")
	if err := d.startManager(); err != nil {
		return err
	}
	defer d.stopManager()

	if err := d.pause(ctx); err != nil {
		return err
	}
	step(4, "Applying a BoltDB KVEndpoint (the embedded store: no server), a Registration and a LeaderLease")
	manifest := filepath.Join(d.work, "kvop-demo.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(demoManifest, namespace, d.dbPath)), 0o644); err != nil {
		return err
	}
	fmt.Println(indent(fmt.Sprintf(demoManifest, namespace, d.dbPath)))
	if err := d.sh(ctx, d.kubectl, "apply", "-f", manifest); err != nil {
		return err
	}

	step(5, "Creating three pods and marking them Ready (there is no kubelet: through the status subresource)")
	pods := filepath.Join(d.work, "pods.yaml")
	if err := os.WriteFile(pods, []byte(fmt.Sprintf(podsManifest, namespace)), 0o644); err != nil {
		return err
	}
	if err := d.sh(ctx, d.kubectl, "apply", "-f", pods); err != nil {
		return err
	}
	for i := range 3 {
		if err := d.setReady(ctx, fmt.Sprintf("web-%d", i), fmt.Sprintf("10.0.0.%d", 11+i), true); err != nil {
			return err
		}
	}
	fmt.Println("    waiting for three entries and a leader ...")
	if err := d.waitFor(ctx, 60*time.Second, d.settled(3)); err != nil {
		return err
	}
	if err := d.show(ctx); err != nil {
		return err
	}

	if err := d.pause(ctx); err != nil {
		return err
	}
	step(6, "Reading the entries from the store with the kvop CLI")
	fmt.Println("    BoltDB allows one process per file, so the manager steps aside for a moment: the")
	fmt.Println("    entries outlive it (they carry a 30s TTL) and it picks them up again on restart.")
	d.stopManager()
	if err := d.sh(ctx, filepath.Join(d.bin, "kvop"), "--backend", "boltdb", "--endpoints", d.dbPath,
		"--prefix", "kvop", "services", "web"); err != nil {
		return err
	}
	if err := d.sh(ctx, filepath.Join(d.bin, "kvop"), "--backend", "boltdb", "--endpoints", d.dbPath,
		"get", "kvop/services/web/10.0.0.11:8080"); err != nil {
		return err
	}
	if err := d.startManager(); err != nil {
		return err
	}
	if err := d.waitFor(ctx, 60*time.Second, d.settled(3)); err != nil {
		return err
	}

	if err := d.pause(ctx); err != nil {
		return err
	}
	leader, err := d.leader(ctx)
	if err != nil {
		return err
	}
	step(7, "Making the leader %s not Ready: its entry goes at once and another pod leads", leader)
	start := time.Now()
	if err := d.setReady(ctx, leader, "", false); err != nil {
		return err
	}
	if err := d.waitFor(ctx, 30*time.Second, func(ctx context.Context) (bool, string) {
		l, err := d.leader(ctx)
		if err != nil || l == "" || l == leader {
			return false, fmt.Sprintf("leader is still %q", l)
		}
		return d.settled(2)(ctx)
	}); err != nil {
		return err
	}
	newLeader, _ := d.leader(ctx)
	fmt.Printf("    %s took over in %s\n", newLeader, time.Since(start).Round(time.Millisecond))
	if err := d.show(ctx); err != nil {
		return err
	}
	d.metrics()

	fmt.Println("\n==> Done. kvop registered ready pods, elected a leader and moved it when the leader stopped being Ready.")
	if d.interactive {
		fmt.Printf("    The control plane and the manager keep running: export KUBECONFIG=%s and explore\n", d.kubeconfig)
		fmt.Println("    (kubectl get kvop -A, kubectl describe klease -n demo worker). Ctrl-C ends the demo.")
		<-ctx.Done()
	}
	return nil
}

func step(n int, format string, args ...any) {
	fmt.Printf("\n==> %d/7 %s\n", n, fmt.Sprintf(format, args...))
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ")
}

// pause waits for Enter in interactive mode.
func (d *demo) pause(ctx context.Context) error {
	if !d.interactive {
		return ctx.Err()
	}
	fmt.Print("\n    [Enter] to continue, Ctrl-C to stop ")
	line := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		close(line)
	}()
	select {
	case <-line:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sh runs a command with the demo's kubeconfig, showing it and its output.
func (d *demo) sh(ctx context.Context, name string, args ...string) error {
	fmt.Printf("    $ %s %s\n", filepath.Base(name), strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+d.kubeconfig)
	out, err := cmd.CombinedOutput()
	if len(out) > 0 {
		fmt.Println(indent(string(out)))
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return nil
}

func (d *demo) writeKubeconfig(env *envtest.Environment) error {
	user, err := env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return err
	}
	d.kubeconfig = filepath.Join(d.work, "kubeconfig")
	return os.WriteFile(d.kubeconfig, data, 0o600)
}

func (d *demo) startManager() error {
	if d.metricsAddr == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		d.metricsAddr = l.Addr().String()
		l.Close()
	}
	logPath := filepath.Join(d.work, "manager.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	args := []string{"--metrics-bind-address=" + d.metricsAddr, "--health-probe-bind-address=0", "--probe-interval=5s"}
	fmt.Printf("    $ manager %s   (log: %s)\n", strings.Join(args, " "), logPath)
	cmd := exec.Command(filepath.Join(d.bin, "manager"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+d.kubeconfig)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting the manager (run `make build`): %w", err)
	}
	d.manager, d.managerDone = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); logFile.Close(); close(done) }(d.managerDone)
	return nil
}

// stopManager stops the manager gracefully (SIGTERM), as a rolling update would.
func (d *demo) stopManager() {
	if d.manager == nil {
		return
	}
	fmt.Println("    stopping the manager (SIGTERM)")
	_ = d.manager.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.managerDone:
	case <-time.After(15 * time.Second):
		_ = d.manager.Process.Kill()
		<-d.managerDone
	}
	d.manager = nil
}

// setReady marks a pod Ready (with an IP) or not Ready through the status subresource.
func (d *demo) setReady(ctx context.Context, pod, ip string, ready bool) error {
	status := "False"
	if ready {
		status = "True"
	}
	patch := fmt.Sprintf(`{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"%s","lastTransitionTime":"%s"}]`,
		status, time.Now().UTC().Format(time.RFC3339))
	if ip != "" {
		patch += fmt.Sprintf(`,"podIP":"%s","podIPs":[{"ip":"%s"}]`, ip, ip)
	}
	patch += "}}"
	return d.sh(ctx, d.kubectl, "patch", "pod", pod, "-n", namespace, "--subresource=status", "--type=merge", "-p", patch)
}

func (d *demo) leader(ctx context.Context) (string, error) {
	var l kvopv1.LeaderLease
	if err := d.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "worker"}, &l); err != nil {
		return "", err
	}
	return l.Status.Leader, nil
}

// settled reports when the Registration holds n entries and exactly one pod is labelled leader.
func (d *demo) settled(n int32) func(context.Context) (bool, string) {
	return func(ctx context.Context) (bool, string) {
		var reg kvopv1.Registration
		if err := d.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "web"}, &reg); err != nil {
			return false, err.Error()
		}
		if reg.Status.Endpoints != n {
			return false, fmt.Sprintf("registration has %d entries, want %d", reg.Status.Endpoints, n)
		}
		var pods corev1.PodList
		if err := d.c.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels{kvopv1.DefaultLeaderLabel: "true"}); err != nil {
			return false, err.Error()
		}
		if len(pods.Items) != 1 {
			return false, fmt.Sprintf("%d pods labelled leader, want 1", len(pods.Items))
		}
		l, _ := d.leader(ctx)
		if l != pods.Items[0].Name {
			return false, fmt.Sprintf("status.leader %q, labelled leader %q", l, pods.Items[0].Name)
		}
		return true, ""
	}
}

func (d *demo) waitFor(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond(ctx)
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(d.work, "manager.log"))
			lines := strings.Split(strings.TrimSpace(string(log)), "\n")
			_ = d.sh(ctx, d.kubectl, "get", "kve,kreg,klease", "-n", namespace, "-o",
				"custom-columns=KIND:.kind,NAME:.metadata.name,READY:.status.conditions[0].status,REASON:.status.conditions[0].reason,MESSAGE:.status.conditions[0].message")
			fmt.Println("    last lines of the manager log:")
			fmt.Println(indent(strings.Join(lines[max(0, len(lines)-25):], "\n")))
			return fmt.Errorf("not settled after %s: %s", timeout, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *demo) show(ctx context.Context) error {
	if err := d.sh(ctx, d.kubectl, "get", "kve,kreg,klease", "-n", namespace); err != nil {
		return err
	}
	return d.sh(ctx, d.kubectl, "get", "pods", "-n", namespace, "-o",
		"custom-columns=POD:.metadata.name,IP:.status.podIP,READY:.status.conditions[?(@.type==\"Ready\")].status,LEADER:.metadata.labels.kvop\\.io/leader")
}

// metrics prints kvop's own metrics from the manager's endpoint.
func (d *demo) metrics() {
	out, err := exec.Command("curl", "-s", "http://"+d.metricsAddr+"/metrics").Output()
	if err != nil {
		return // curl is optional
	}
	fmt.Printf("\n    $ curl http://%s/metrics | grep ^kvop_ | head\n", d.metricsAddr)
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "kvop_") && !strings.Contains(line, "_bucket") && n < 12 {
			fmt.Println("    " + line)
			n++
		}
	}
}

const demoManifest = `
apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
---
apiVersion: kvop.io/v1
kind: KVEndpoint
metadata:
  name: local
  namespace: %[1]s
spec:
  backend: boltdb
  path: %[2]s
---
apiVersion: kvop.io/v1
kind: Registration
metadata:
  name: web
  namespace: %[1]s
spec:
  endpointRef: {name: local}
  selector: {matchLabels: {app: web}}
  port: http
  ttl: 30s
  metadata: {version: "1.0"}
---
apiVersion: kvop.io/v1
kind: LeaderLease
metadata:
  name: worker
  namespace: %[1]s
spec:
  endpointRef: {name: local}
  ttl: 5s
  candidates:
    selector: {matchLabels: {app: web}}
`

const podsManifest = `
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: %[1]s, labels: {app: web}}
spec:
  nodeName: node-a
  containers: [{name: web, image: registry.invalid/web:1.0, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: %[1]s, labels: {app: web}}
spec:
  nodeName: node-b
  containers: [{name: web, image: registry.invalid/web:1.0, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: %[1]s, labels: {app: web}}
spec:
  nodeName: node-c
  containers: [{name: web, image: registry.invalid/web:1.0, ports: [{name: http, containerPort: 8080}]}]
`
