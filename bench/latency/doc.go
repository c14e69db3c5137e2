// Package latency is the latency harness of issue 10: leadership handover after Resign, crash
// failover after SIGKILL of the leader process, and follower notification — for kvop's
// leadership package on every backend and, beside it on the same servers, for etcd's
// concurrency.Election, consul's api.Lock and client-go's leaderelection on a Lease.
//
// Every harness file carries the build tag "bench", so `go test ./...` neither compiles nor
// runs it (it takes minutes and starts every server). hack/bench.sh runs it as
//
//	BENCH_LATENCY_OUT=bench/results/latency.json \
//	  go test -tags bench -run '^TestLatency$' -count=1 -v -timeout 60m ./bench/latency
//
// and bench/cmd/benchreport turns the JSON into tables. Settings (environment):
//
//	BENCH_LATENCY_OUT  where to write the results (default: only logged)
//	BENCH_HANDOVERS    handovers per series (default 20)
//	BENCH_CRASHES      crashes per kvop and etcd series (default 5)
//	BENCH_TTL          the leader TTL of kvop candidates and peer sessions (default 2s)
//	BENCH_BACKENDS     comma-separated kvop backends (default: every registered one)
//	BENCH_PEERS        comma-separated peers: etcd, consul, client-go (default: all three)
//	BENCH_SLOW_PEERS   1 runs the peers' slow defaults once each (client-go crash and
//	                   handover without ReleaseOnCancel, ~15 s each; consul api.Lock defaults
//	                   crash, ~20-45 s); otherwise the report shows the documented values
//
// The harness measures and records; it asserts no timing (targets are judged in the report).
package latency
