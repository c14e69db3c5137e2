// Package results is the file the latency harness (bench/latency) writes and the report
// generator (bench/cmd/benchreport) reads, and the order statistics both use, so that the
// numbers in docs/benchmarks.md are computed one way only.
package results

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"time"
)

// Areas of the latency harness.
const (
	Handover = "handover" // Resign (or its peer equivalent) → another candidate leads
	Crash    = "crash"    // SIGKILL of the leader process → another candidate leads
	Follower = "follower" // the new leader knows → a follower knows
)

// Series is one measured (or deliberately skipped) latency: kvop on one backend, or one peer
// on the server of that backend.
type Series struct {
	Area    string `json:"area"`
	Backend string `json:"backend"` // the kvop backend this row sits beside (same server)
	Subject string `json:"subject"` // "kvop", or the peer, e.g. "etcd concurrency.Election"
	Peer    bool   `json:"peer"`
	Note    string `json:"note,omitempty"` // settings that matter to the number (TTL, options)
	// Target is the bound a kvop series must stay under (0 for peers).
	Target time.Duration `json:"target_ns,omitempty"`
	// Samples in the order measured; durations may be negative for Follower (the follower
	// heard of the change before the winner's own call returned).
	Samples []time.Duration `json:"samples_ns"`
	Error   string          `json:"error,omitempty"`   // why the series is incomplete
	Skipped string          `json:"skipped,omitempty"` // why it was not run (e.g. slow peer)
	Known   string          `json:"known,omitempty"`   // the documented value, for skipped ones
}

// File is the harness's output.
type File struct {
	Started  time.Time         `json:"started"`
	Settings map[string]string `json:"settings"`
	Series   []*Series         `json:"series"`
}

// Write stores f as indented JSON at path.
func (f *File) Write(path string) error {
	raw, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}

// Read loads a File written by Write.
func Read(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

// Summary is what the report shows of a set of samples.
type Summary struct {
	N                     int
	Min, Median, P90, Max float64
}

// Summarize returns the order statistics of xs (which it does not modify); the zero Summary
// when xs is empty. Median is the mean of the middle two for an even count; P90 is the
// nearest-rank 90th percentile (the ceil(0.9·n)-th smallest), so with few samples it is the
// largest but one or the largest — it never interpolates a value that was not measured.
func Summarize(xs []float64) Summary {
	n := len(xs)
	if n == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	rank := int(math.Ceil(0.9 * float64(n)))
	return Summary{N: n, Min: s[0], Median: med, P90: s[rank-1], Max: s[n-1]}
}

// Durations converts samples to float64 nanoseconds for Summarize.
func Durations(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d)
	}
	return out
}
