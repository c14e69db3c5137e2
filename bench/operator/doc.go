//go:build bench

// Package operator is the operator part of issue 10's benchmarks: registration latency (a
// pod turns Ready → its entry is visible in the backend) and the manager's footprint at scale
// (RSS, reconcile totals, full resync after a restart).
//
// Every file carries the build tag "bench", so `go test ./...` neither compiles nor runs it.
// hack/bench.sh runs it as
//
//	BENCH_OPERATOR_OUT=bench/results/operator.json \
//	  go test -tags bench -run '^TestOperator$' -count=1 -v -timeout 60m ./bench/operator
//
// and bench/cmd/benchreport renders the JSON in docs/benchmarks.md's Operator section.
//
// Latency: the controllers run in the test process (operatortest.StartManager) against
// envtest's kube-apiserver; one Registration selects N pods, created not Ready; the harness
// watches the service's directory in the backend (WatchTree, a client of its own), then marks
// every pod Ready through the status subresource (BENCH_OPERATOR_WORKERS at a time) and records
// per pod the time from just before its status update was sent to the first WatchTree list
// that holds its entry.
//
// Scale: the real manager binary (cmd/manager, built by the harness) runs as a process with a
// kubeconfig of an envtest user; the harness creates R Registrations of P pods each, makes the
// pods Ready in bulk, waits until every entry is in the backend and every Registration reports
// Ready with P endpoints, sampling the manager's VmRSS (and reading VmHWM) from /proc, and
// reads controller_runtime_reconcile_total from its /metrics. Then it stops the manager
// (SIGTERM), deletes the whole service tree from the backend, starts the manager again and
// times the full resync: process start → every entry back in the backend.
//
// Settings (environment):
//
//	BENCH_OPERATOR_OUT       where to write the results (default: only logged)
//	BENCH_OPERATOR_PODS      comma-separated pod counts of the latency runs (default 100;
//	                         issue 10 asks for 100,1000)
//	BENCH_OPERATOR_BACKENDS  backends of the latency runs (default etcd,boltdb)
//	BENCH_OPERATOR_WORKERS   concurrent status updates when marking pods Ready (default 8)
//	BENCH_OPERATOR_SCALE     small (default: 100 Registrations × 10 pods), full (1,000 × 10 =
//	                         10,000 pods, issue 10's scale), RxP (e.g. 200x10), or off
//	BENCH_OPERATOR_PARTS     latency,scale (default both)
//	BENCH_OPERATOR_MEMLIMIT  GOMEMLIMIT of the manager processes in the scale run, as the
//	                         chart sets it from a memory limit (e.g. 192MiB; default none)
//	BENCH_OPERATOR_LOGDIR    keep the scale run's manager logs there (default: a temporary
//	                         directory); with GODEBUG=gctrace=1 they show the Go heap per GC
package operator
