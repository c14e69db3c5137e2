// Command benchreport writes docs/benchmarks.md from the raw outputs of hack/bench.sh:
//
//	<results>/meta.env           how the run was made (hack/bench.sh writes it)
//	<results>/store-<backend>.txt  go test -bench BenchmarkStore of pkg/kvstore/<backend>
//	<results>/boltdb-put.txt      go test -bench BenchmarkPut of bench/boltdb
//	<results>/latency.json        the latency harness (bench/latency)
//	<results>/operator.json       the operator harness (bench/operator)
//
// A missing input leaves its section saying so rather than failing, so that a partial run
// (BENCH_ONLY) still produces a readable file.
//
//	go run ./bench/cmd/benchreport -results bench/results -out docs/benchmarks.md
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	resultsDir := flag.String("results", "bench/results", "directory with the raw outputs of hack/bench.sh")
	out := flag.String("out", "docs/benchmarks.md", "the Markdown file to write")
	flag.Parse()
	doc, err := build(*resultsDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	fmt.Println("wrote", *out)
}
