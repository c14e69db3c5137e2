package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kvop/kvop/bench/internal/results"
)

// What the operator harness (bench/operator) writes to operator.json.
type (
	operatorFile = results.OperatorFile
	opLatency    = results.OperatorLatency
	opScale      = results.OperatorScale
)

// Issue 10's operator targets.
const (
	regLatencyTarget = time.Second
	rssTarget        = 200 << 20
	resyncTarget     = 60 * time.Second
	fullPods         = 10000
	fullRegs         = 1000
)

func readOperator(path string) (*operatorFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f operatorFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

// nearestRank is the ceil(q·n)-th smallest of xs (xs not empty).
func nearestRank(xs []time.Duration, q float64) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[max(int(math.Ceil(q*float64(len(s))))-1, 0)]
}

func fmtDur(d time.Duration) string { return fmtNs(float64(d)) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func operatorSection(w *strings.Builder, dir string, summary *[]string) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## Operator\n\n")
	f, err := readOperator(filepath.Join(dir, "operator.json"))
	if errors.Is(err, fs.ErrNotExist) {
		p("Not measured yet in this report: run `BENCH_ONLY=operator make bench` (bench/operator).\n\n")
		*summary = append(*summary, "- **Registration latency** (p99 < 1 s): not measured.",
			"- **Manager at scale** (RSS < 200 MiB, resync < 60 s at 10,000 pods): not measured.")
		return nil
	}
	if err != nil {
		return err
	}
	p("bench/operator, run %s (commit `%s`), against envtest's kube-apiserver (no kubelet: the harness sets each pod's IP and ",
		f.Started.UTC().Format("2006-01-02 15:04 MST"), orDash(f.Settings["commit"]))
	p("Ready condition through the status subresource, as the kubelet would).\n\n")

	p("### Registration latency: pod Ready → entry visible in the backend\n\n")
	p("One Registration selects N pods, created not Ready; the controllers run in the harness's process. ")
	p("The harness watches the service's directory in the backend (`WatchTree`, a store client of its own) ")
	p("and marks every pod Ready (%s status updates at a time, as fast as the API server takes them: a whole ", orDash(f.Settings["workers"]))
	p("rollout at once). Per pod: from just before its status update is sent to the first WatchTree list ")
	p("holding its entry. p99 is nearest-rank. Target: p99 < 1 s.\n\n")
	if len(f.Latency) == 0 {
		p("Not run in this report.\n\n")
	} else {
		p("| Backend | Pods | p50 | p99 | max | n | last entry after first update | Target | Met |\n")
		p("|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	}
	met, total := 0, 0
	var missed []string
	counts := map[int]bool{}
	for _, r := range f.Latency {
		counts[r.Pods] = true
		total++
		if len(r.Samples) == 0 {
			p("| %s | %d | — | — | — | 0 | — | p99 < 1 s | **no**: %s |\n", r.Backend, r.Pods, orDash(r.Error))
			missed = append(missed, fmt.Sprintf("%s/%d (no result)", r.Backend, r.Pods))
			continue
		}
		p99 := nearestRank(r.Samples, 0.99)
		verdict := "yes"
		switch {
		case r.Error != "" || len(r.Samples) < r.Pods:
			verdict = "**no**: " + fmt.Sprintf("%d of %d entries seen; %s", len(r.Samples), r.Pods, r.Error)
			missed = append(missed, fmt.Sprintf("%s/%d (incomplete)", r.Backend, r.Pods))
		case p99 >= regLatencyTarget:
			verdict = "**no**"
			missed = append(missed, fmt.Sprintf("%s/%d p99 %s", r.Backend, r.Pods, fmtDur(p99)))
		default:
			met++
		}
		p("| %s | %d | %s | %s | %s | %d | %s | p99 < 1 s | %s |\n", r.Backend, r.Pods, fmtDur(nearestRank(r.Samples, 0.5)),
			fmtDur(p99), fmtDur(slices.Max(r.Samples)), len(r.Samples), durOrDash(r.Total), verdict)
	}
	p("\n")
	line := fmt.Sprintf("- **Registration latency** (p99 < 1 s): %d of %d runs met", met, total)
	if len(missed) > 0 {
		line += "; missed: " + strings.Join(missed, ", ")
	}
	if !counts[1000] {
		line += "; 1,000 pods not run (BENCH_OPERATOR_PODS=100,1000)"
		p("Issue 10 asks for 100 and 1,000 pods; this report ran %s only (1,000: `BENCH_OPERATOR_PODS=100,1000`).\n\n",
			strings.Trim(orDash(f.Settings["pods"]), "[]"))
	}
	*summary = append(*summary, line+".")

	p("### Manager at scale: memory, reconciles, full resync\n\n")
	s := f.Scale
	if s == nil {
		p("Not run in this report (`BENCH_OPERATOR_SCALE`).\n\n")
		*summary = append(*summary, "- **Manager at scale** (RSS < 200 MiB, resync < 60 s at 10,000 pods): not measured.")
		return nil
	}
	full := s.Pods >= fullPods && s.Registrations >= fullRegs
	p("The real manager binary (`cmd/manager`, built by the harness) runs as a process (`--namespace`, a ")
	p("kubeconfig of an envtest user) on an %s KVEndpoint. The harness creates %d Registrations of %d pods each ", s.Backend, s.Registrations, s.PodsPer)
	p("(**%d pods**), marks every pod Ready in bulk, and waits until every entry is in the backend and every ", s.Pods)
	p("Registration reports Ready with %d endpoints. RSS: the kernel's peak (VmHWM) of the manager process, ", s.PodsPer)
	p("and the largest VmRSS sampled every 100 ms. Reconciles: `controller_runtime_reconcile_total` from its ")
	p("/metrics. Then the manager gets SIGTERM, the whole service tree is deleted from the backend, a new ")
	p("manager process starts, and the resync is timed from its start to every entry being back.\n\n")
	if s.MemLimit != "" {
		p("Both manager processes run with `GOMEMLIMIT=%s`, as the chart deploys the manager with ", s.MemLimit)
		p("`resources.limits.memory` of that size (it passes the container's memory limit to the Go runtime as ")
		p("its soft limit, so the heap is collected harder before it could outgrow the container).\n\n")
	} else {
		p("The manager processes run without GOMEMLIMIT (as with no container memory limit).\n\n")
	}
	if full {
		p("Scale: **full** (issue 10's 1,000 Registrations / 10,000 pods).\n\n")
	} else {
		p("Scale: **%s — %d Registrations / %d pods, not issue 10's 1,000 / 10,000**: the targets below are for ", s.Mode, s.Registrations, s.Pods)
		p("10,000 pods, so a *yes* here only says the smaller run stayed within them. Full scale: ")
		p("`BENCH_OPERATOR_SCALE=full BENCH_ONLY=operator make bench`.\n\n")
	}
	if s.Error != "" {
		p("**Incomplete:** %s\n\n", s.Error)
	}
	p("Everything shares the machine's cores: kube-apiserver, its etcd, the backend's etcd, the harness and the ")
	p("manager, so the times include their contention.\n\n")
	judge := func(ok, measured bool) string {
		switch {
		case !measured:
			return "no result"
		case ok && full:
			return "yes"
		case ok:
			return "yes at this scale (target is for 10,000 pods)"
		default:
			return "**no**"
		}
	}
	p("| Measure | Value | Target | Met |\n|---|---:|---|---|\n")
	p("| Create %d Registrations + %d pods, mark all Ready | %s | — | — |\n", s.Registrations, s.Pods, fmtDur(s.Setup))
	p("| First pod marked Ready → every entry registered, every Registration Ready | %s | — | — |\n", durOrDash(s.Registered))
	p("| Manager peak RSS (VmHWM; max sampled VmRSS) | %s (%s) | < 200 MiB | %s |\n", mib(s.HWM), mib(s.MaxRSS),
		judge(s.HWM < rssTarget, s.HWM > 0))
	p("| Full resync after restart: process start → every entry back | %s | < 60 s | %s |\n", durOrDash(s.Resync),
		judge(s.Resync < resyncTarget, s.Resync > 0))
	p("| Restarted manager peak RSS (VmHWM) | %s | < 200 MiB | %s |\n", mib(s.ResyncHWM), judge(s.ResyncHWM < rssTarget, s.ResyncHWM > 0))
	p("\n")
	p("Reconcile totals (`controller_runtime_reconcile_total`, by result):\n\n")
	p("| Controller | first process: total (success / requeue_after / requeue / error) | after restart: total (same) |\n|---|---|---|\n")
	ctrls := map[string]bool{}
	for c := range s.Reconciles {
		ctrls[c] = true
	}
	for c := range s.ResyncRecon {
		ctrls[c] = true
	}
	names := make([]string, 0, len(ctrls))
	for c := range ctrls {
		names = append(names, c)
	}
	sort.Strings(names)
	cell := func(m map[string]float64) string {
		if m == nil {
			return "—"
		}
		return fmt.Sprintf("%s (%s / %s / %s / %s)", num(m["success"]+m["requeue_after"]+m["requeue"]+m["error"]),
			num(m["success"]), num(m["requeue_after"]), num(m["requeue"]), num(m["error"]))
	}
	for _, c := range names {
		p("| %s | %s | %s |\n", c, cell(s.Reconciles[c]), cell(s.ResyncRecon[c]))
	}
	p("\n")
	scale := fmt.Sprintf("%d Registrations / %d pods (%s scale)", s.Registrations, s.Pods, s.Mode)
	if !full {
		scale += ", not the target's 10,000"
	}
	yn := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	*summary = append(*summary, fmt.Sprintf("- **Manager at scale** (RSS < 200 MiB, resync < 60 s at 10,000 pods), run at %s: peak RSS %s (%s), full resync %s (%s).",
		scale, mib(s.HWM), yn(s.HWM > 0 && s.HWM < rssTarget), durOrDash(s.Resync), yn(s.Resync > 0 && s.Resync < resyncTarget)))
	return nil
}

func durOrDash(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return fmtDur(d)
}
