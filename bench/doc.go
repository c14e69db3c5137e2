// Package bench holds kvop's side-by-side benchmarks against the peers it replaces (issue 10).
// Nothing here runs in `go test ./...`: `make bench` (hack/bench.sh) runs it all and writes
// docs/benchmarks.md.
//
//	pkg/kvstore/<backend>   BenchmarkStore: kvop vs the raw client on the same server (reused)
//	bench/boltdb            BenchmarkPut: BoltDB Put throughput with 1, 8, 64 writers vs
//	                        opening the file per call (libkv's boltdb store)
//	bench/latency           the latency harness (build tag "bench"): leadership handover after
//	                        Resign, crash failover after SIGKILL, follower notification, for
//	                        kvop on every backend and for etcd Election, consul api.Lock and
//	                        client-go leaderelection
//	bench/cmd/benchreport   turns the raw outputs into docs/benchmarks.md
//	bench/internal/results  the harness's result file and the statistics both sides use
package bench
