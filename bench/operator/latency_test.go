//go:build bench

package operator

import (
	"context"
	"fmt"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/operatortest"
	"github.com/kvop/kvop/pkg/discovery"
	"github.com/kvop/kvop/pkg/kvstore"
)

// measureLatency: one Registration of n pods; every pod made Ready; per pod the time from its
// status update being sent to its entry first appearing in a WatchTree of the service dir.
func measureLatency(t *testing.T, c config, run *LatencyRun) {
	defer func() {
		if t.Failed() && run.Error == "" {
			run.Error = "harness failed (see the log)"
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kc := fastClient(t)
	tg := backendtest.Get(t, kvstore.Backend(c.backendName(run.Backend)))
	ns := operatortest.Namespace(t)
	prefix := "bench/" + ns
	const service = "svc"
	operatortest.StartManager(t, ns)
	operatortest.CreateEndpoint(t, ns, "kv", tg, prefix)
	reg := newRegistration(ns, "reg", "app", "kv")
	reg.Spec.Service = service
	if err := kc.Create(ctx, reg); err != nil {
		t.Fatal(err)
	}

	// Pods first, not Ready: creating them is not what is measured.
	pods := make([]*corev1.Pod, run.Pods)
	if err := parallel(run.Pods, c.workers, func(i int) error {
		pods[i] = newPod(ns, fmt.Sprintf("p%05d", i), "app")
		return kc.Create(ctx, pods[i])
	}); err != nil {
		t.Fatalf("creating pods: %v", err)
	}
	// The Registration has seen them all (0 Ready) before the clock starts.
	operatortest.Eventually(t, 60*time.Second, func() (bool, string) {
		got := &kvopv1.Registration{}
		if err := kc.Get(ctx, types.NamespacedName{Namespace: ns, Name: "reg"}, got); err != nil {
			return false, err.Error()
		}
		return got.Status.ObservedGeneration == got.Generation, fmt.Sprintf("Registration status %+v", got.Status)
	})
	time.Sleep(time.Second)

	store := tg.Open(t)
	dir := discovery.ServiceDir(prefix, service)
	ch, err := store.WatchTree(ctx, dir)
	if err != nil {
		t.Fatalf("WatchTree %s: %v", dir, err)
	}
	first := <-ch // the current list: empty
	if len(first) != 0 {
		t.Fatalf("service dir holds %d entries before any pod is Ready", len(first))
	}
	var (
		mu       sync.Mutex
		seen     = map[string]time.Time{}
		allSeen  = make(chan struct{})
		sentAt   = make([]time.Time, run.Pods)
		watchErr = make(chan struct{})
	)
	go func() {
		defer close(watchErr)
		for pairs := range ch {
			now := time.Now()
			mu.Lock()
			for _, p := range pairs {
				ip, _, _ := strings.Cut(path.Base(p.Key), ":")
				if _, ok := seen[ip]; !ok {
					seen[ip] = now
				}
			}
			n := len(seen)
			mu.Unlock()
			if n == run.Pods {
				close(allSeen)
				return
			}
		}
	}()

	start := time.Now()
	if err := parallel(run.Pods, c.workers, func(i int) error {
		sentAt[i] = time.Now()
		return markReady(ctx, kc, pods[i], podIP(i))
	}); err != nil {
		t.Fatalf("marking pods Ready: %v", err)
	}
	timeout := 60*time.Second + time.Duration(run.Pods)*50*time.Millisecond
	select {
	case <-allSeen:
	case <-watchErr:
		run.Error = "the WatchTree channel closed early"
	case <-time.After(timeout):
		run.Error = fmt.Sprintf("not every entry seen within %s", timeout)
	}
	mu.Lock()
	defer mu.Unlock()
	var last time.Time
	for i := range pods {
		at, ok := seen[podIP(i)]
		if !ok {
			continue
		}
		run.Samples = append(run.Samples, at.Sub(sentAt[i]))
		if at.After(last) {
			last = at
		}
	}
	run.Total = last.Sub(start)
	if run.Error != "" {
		run.Error += fmt.Sprintf(" (%d of %d seen)", len(seen), run.Pods)
		t.Error(run.Error)
	}
	t.Logf("%s, %d pods: %d entries, all within %s of the first update", run.Backend, run.Pods, len(run.Samples), run.Total)
}

func (c config) backendName(b string) string { return strings.TrimSpace(b) }
