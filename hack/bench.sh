#!/usr/bin/env bash
# Runs kvop's benchmarks side by side with its peers (issue 10) and writes docs/benchmarks.md.
# `make bench` runs this. It starts every server itself (internal/testservers: etcd, etcd 3.4 with
# v2, ZooKeeper, Consul, envtest's kube-apiserver), so `make tools` must have installed them.
# About 15 minutes on 2 cores with the defaults.
#
# Settings (environment):
#   BENCH_ONLY        comma-separated parts to run: store,boltdb,latency,operator (default: all four)
#   BENCH_COUNT       -count of the Go benchmarks (default 5; medians and spread need ≥ 5)
#   BENCH_TIME        -benchtime of the Go benchmarks (default 1s)
#   BENCH_BACKENDS    comma-separated kvop backends (default: all five)
#   BENCH_HANDOVERS, BENCH_CRASHES, BENCH_TTL, BENCH_PEERS, BENCH_SLOW_PEERS
#                     the latency harness's settings, see bench/latency/doc.go
#   BENCH_OPERATOR_PODS, BENCH_OPERATOR_SCALE, BENCH_OPERATOR_BACKENDS, BENCH_OPERATOR_WORKERS
#                     the operator harness's settings, see bench/operator/doc.go; by default
#                     registration latency at 100 pods and the manager at 100 Registrations ×
#                     10 pods (~1 min); issue 10's scale: BENCH_OPERATOR_PODS=100,1000
#                     BENCH_OPERATOR_SCALE=full (10,000 pods, much longer)
#   BENCH_PROFILE=1   also write CPU profiles of the store benchmarks (bench/results/*.pprof)
#   BENCH_NOTE        a line for the report's header (e.g. "short verification run")
#   BENCH_RESULTS     where raw outputs go (default bench/results; wiped at the start)
#   BENCH_DOC         the report to write (default docs/benchmarks.md)
#
# Quick check of the whole pipeline:
#   BENCH_COUNT=1 BENCH_TIME=100ms BENCH_HANDOVERS=3 BENCH_CRASHES=1 hack/bench.sh
set -uo pipefail

cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
GO=${GO:-go}
ONLY=${BENCH_ONLY:-store,boltdb,latency,operator}
COUNT=${BENCH_COUNT:-5}
BENCHTIME=${BENCH_TIME:-1s}
BACKENDS=${BENCH_BACKENDS:-boltdb,consul,etcd,etcdv2,zookeeper}
RESULTS=${BENCH_RESULTS:-$PWD/bench/results}
DOC=${BENCH_DOC:-docs/benchmarks.md}
case "$RESULTS" in /*) ;; *) RESULTS=$PWD/$RESULTS ;; esac # go test runs in the package dir

want() { [[ ",$ONLY," == *",$1,"* ]]; }
log() { printf '\n==> %s (%s)\n' "$*" "$(date +%T)"; }

# Results of an earlier run must not mix with this one's in the report.
rm -rf "$RESULTS"
mkdir -p "$RESULTS" "$(dirname "$DOC")"
status=0
start=$(date +%s)

{
	dirty=$(git status --porcelain --untracked-files=no -- pkg internal bench 2>/dev/null | head -1)
	echo "commit=$(git rev-parse --short HEAD 2>/dev/null)${dirty:+ (uncommitted changes in pkg, internal or bench)}"
	echo "count=$COUNT"
	echo "benchtime=$BENCHTIME"
	echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
	echo "note=${BENCH_NOTE:-}"
} >"$RESULTS/meta.env"

if want store; then
	# BenchmarkStore starts a fresh server each time it runs, and within one run its kvop half
	# always goes first, on the coldest server (a JVM before JIT, a Consul agent still settling):
	# measured that way raw Consul Puts took 2.4 ms as the first half and 0.54 ms as the second.
	# So each half gets a go test process (and server) of its own, alternating which goes first.
	for b in ${BACKENDS//,/ }; do
		log "store overhead: $b (BenchmarkStore, kvop vs raw, $COUNT × each)"
		for ((i = 1; i <= COUNT; i++)); do
			halves=(kvop raw)
			((i % 2 == 0)) && halves=(raw kvop)
			for h in "${halves[@]}"; do
				prof=()
				if [[ ${BENCH_PROFILE:-} == 1 ]]; then
					prof=(-cpuprofile "$RESULTS/store-$b-$h-$i.cpu.pprof" -o "$RESULTS/store-$b.test")
				fi
				"$GO" test -run '^$' -bench "^BenchmarkStore\$/^$h\$" -benchmem -count 1 -benchtime "$BENCHTIME" \
					-timeout 30m "${prof[@]}" "./pkg/kvstore/$b" >"$RESULTS/store-$b-$h-$i.log" 2>&1
				st=$?
				grep -E '^Benchmark' "$RESULTS/store-$b-$h-$i.log" | tee -a "$RESULTS/store-$b.txt"
				[[ $st == 0 ]] || { echo "store benchmark $b/$h failed: see $RESULTS/store-$b-$h-$i.log"; status=1; }
			done
		done
	done
fi

if want boltdb; then
	log "BoltDB Put throughput (bench/boltdb)"
	"$GO" test -run '^$' -bench '^BenchmarkPut$' -benchmem -count "$COUNT" -benchtime "$BENCHTIME" \
		-timeout 60m ./bench/boltdb 2>&1 | tee "$RESULTS/boltdb-put.txt" | grep -E '^(Benchmark|ok|FAIL|---)'
	[[ ${PIPESTATUS[0]} == 0 ]] || { echo "BoltDB benchmark failed"; status=1; }
fi

if want latency; then
	log "latency harness (bench/latency: handover, crash, follower)"
	BENCH_LATENCY_OUT="$RESULTS/latency.json" BENCH_BACKENDS="$BACKENDS" \
		"$GO" test -tags bench -run '^TestLatency$' -count=1 -v -timeout 60m ./bench/latency \
		2>&1 | tee "$RESULTS/latency.log" | grep -E '^(=== RUN|--- |\s+latency_test|ok|FAIL|PASS)'
	[[ ${PIPESTATUS[0]} == 0 ]] || { echo "latency harness failed (see $RESULTS/latency.log)"; status=1; }
fi

if want operator; then
	log "operator harness (bench/operator: registration latency, manager RSS and resync at scale)"
	BENCH_OPERATOR_OUT="$RESULTS/operator.json" \
		"$GO" test -tags bench -run '^TestOperator$' -count=1 -v -timeout 120m ./bench/operator \
		2>&1 | tee "$RESULTS/operator.log" | grep -E '^(=== RUN|--- |\s+(latency|scale)_test|ok|FAIL|PASS)'
	[[ ${PIPESTATUS[0]} == 0 ]] || { echo "operator harness failed (see $RESULTS/operator.log)"; status=1; }
fi

echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/meta.env"
log "report → $DOC (benchmarks took $(($(date +%s) - start))s)"
"$GO" run ./bench/cmd/benchreport -results "$RESULTS" -out "$DOC" || status=1
if [[ $status != 0 ]]; then
	echo "some benchmarks failed: $DOC marks what is missing" >&2
fi
exit $status
