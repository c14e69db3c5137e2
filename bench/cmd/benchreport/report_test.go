package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvop/kvop/bench/internal/results"
)

const sampleBench = `goos: linux
pkg: github.com/kvop/kvop/pkg/kvstore/etcd
BenchmarkStore/kvop/Put-2         	    3000	    400000 ns/op	   0.64 MB/s	    9000 B/op	     120 allocs/op
BenchmarkStore/kvop/Put-2         	    3000	    420000 ns/op	   0.61 MB/s	    9000 B/op	     120 allocs/op
BenchmarkStore/raw/Put-2          	    3000	    400000 ns/op	   0.64 MB/s	    8000 B/op	     100 allocs/op
BenchmarkStore/raw/Put-2          	    3000	    400000 ns/op	   0.64 MB/s	    8000 B/op	     100 allocs/op
BenchmarkStore/kvop/Get-2         	    3000	    300000 ns/op
BenchmarkStore/raw/Get-2          	    3000	    200000 ns/op
{"level":"warn","msg":"a client log line that is not a result"}
PASS
`

func TestParseBench(t *testing.T) {
	runs, err := parseBench(strings.NewReader(sampleBench))
	if err != nil {
		t.Fatal(err)
	}
	put := runs["BenchmarkStore/kvop/Put"]
	if got := put["ns/op"]; len(got) != 2 || got[0] != 400000 || got[1] != 420000 {
		t.Errorf("kvop Put ns/op = %v", got)
	}
	if got := put["allocs/op"]; len(got) != 2 || got[0] != 120 {
		t.Errorf("kvop Put allocs/op = %v", got)
	}
	if len(runs) != 4 {
		t.Errorf("parsed %d benchmarks, want 4: %v", len(runs), runs)
	}
}

// TestBuild renders a report from fixture inputs and checks the verdicts it derives.
func TestBuild(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("store-etcd.txt", sampleBench)
	write("meta.env", "count=2\nbenchtime=1s\nnote=fixture\n")
	ms := func(xs ...float64) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x * float64(time.Millisecond))
		}
		return out
	}
	lat := &results.File{Settings: map[string]string{"handovers": "3"}, Series: []*results.Series{
		{Area: results.Handover, Backend: "etcd", Subject: "kvop", Target: 100 * time.Millisecond, Samples: ms(3, 4, 5)},
		{Area: results.Handover, Backend: "etcd", Subject: "etcd concurrency.Election", Peer: true, Samples: ms(2, 2, 2)},
		{Area: results.Handover, Backend: "etcd", Subject: "client-go", Peer: true, Skipped: "slow", Known: "~15s"},
		{Area: results.Handover, Backend: "consul", Subject: "kvop", Target: 100 * time.Millisecond, Samples: ms(50, 60, 150, 50, 50, 50, 50, 50, 50, 50)},
		{Area: results.Crash, Backend: "etcd", Subject: "kvop", Target: 3500 * time.Millisecond, Samples: ms(4000)},
	}}
	if err := lat.Write(filepath.Join(dir, "latency.json")); err != nil {
		t.Fatal(err)
	}
	doc, err := build(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| etcd | Put | 410 µs ±2% | 400 µs ±0% | 1.02 | ≤ 1.05 | yes | 120 (100) |",
		"| etcd | Get | 300 µs ±0% | 200 µs ±0% | 1.50 | ≤ 1.05 | **no** | — |",
		"kvop/peer |",
		"| etcd | 4.00 ms | 5.00 ms | 5.00 ms | 3 | < 100 ms | yes | etcd concurrency.Election | 2.00 ms | 2.00 ms | 2.00 ms | 3 | 2 |",
		"not run: slow; known: ~15s",
		"| consul | 50.0 ms | 60.0 ms | 150 ms | 10 | < 100 ms | p90 only | — |",
		"| etcd | 4.00 s | 4.00 s | 4.00 s | 1 | ≤ 3.50 s | **no** | — |",
		"**Leadership handover after Resign** (< 100 ms): 1 of 2 backends met; not met: consul (p90 only)",
		"## Summary",
		"## Operator\n\nNot measured yet",
		"- **Registration latency** (p99 < 1 s): not measured.",
		"BoltDB Put throughput\n\n",
		"| Note | fixture |",
		"- **Follower notification** (< 50 ms): not measured.",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(doc)
	}
}

func TestOperatorSection(t *testing.T) {
	dir := t.TempDir()
	ms := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i+1) * time.Millisecond
		}
		return out
	}
	f := operatorFile{
		Settings: map[string]string{"pods": "[100]", "workers": "8", "commit": "abc1234"},
		Latency: []*opLatency{
			{Backend: "etcd", Pods: 100, Samples: ms(100), Total: 150 * time.Millisecond},
			{Backend: "boltdb", Pods: 100, Samples: ms(90), Error: "not every entry seen"},
		},
		Scale: &opScale{Mode: "small", Backend: "etcd", Registrations: 100, PodsPer: 10, Pods: 1000,
			HWM: 300 << 20, MaxRSS: 290 << 20, Resync: 2 * time.Second, ResyncHWM: 100 << 20,
			Reconciles: map[string]map[string]float64{"registration": {"success": 1, "requeue_after": 120}}},
	}
	raw, _ := json.Marshal(f)
	if err := os.WriteFile(filepath.Join(dir, "operator.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	doc, err := build(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| etcd | 100 | 50.0 ms | 99.0 ms | 100 ms | 100 | 150 ms | p99 < 1 s | yes |",
		"| boltdb | 100 | 45.0 ms | 90.0 ms | 90.0 ms | 90 | — | p99 < 1 s | **no**: 90 of 100 entries seen; not every entry seen |",
		"- **Registration latency** (p99 < 1 s): 1 of 2 runs met; missed: boltdb/100 (incomplete); 1,000 pods not run",
		"not issue 10's 1,000 / 10,000",
		"| Manager peak RSS (VmHWM; max sampled VmRSS) | 300 MiB (290 MiB) | < 200 MiB | **no** |",
		"| 2.00 s | < 60 s | yes at this scale (target is for 10,000 pods) |",
		"| registration | 121 (1 / 120 / 0 / 0) | — |",
		"peak RSS 300 MiB (**not met**), full resync 2.00 s (met).",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(doc)
	}
}
