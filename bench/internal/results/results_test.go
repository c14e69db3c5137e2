package results

import (
	"path/filepath"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"one", []float64{7}, Summary{N: 1, Min: 7, Median: 7, P90: 7, Max: 7}},
		{"odd", []float64{5, 1, 3}, Summary{N: 3, Min: 1, Median: 3, P90: 5, Max: 5}},
		{"even", []float64{4, 1, 3, 2}, Summary{N: 4, Min: 1, Median: 2.5, P90: 4, Max: 4}},
		// Nearest rank: ceil(0.9·20) = 18th smallest of 1..20.
		{"twenty", seq(20), Summary{N: 20, Min: 1, Median: 10.5, P90: 18, Max: 20}},
		{"negative", []float64{-2, 1, -1}, Summary{N: 3, Min: -2, Median: -1, P90: 1, Max: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]float64(nil), tc.in...)
			if got := Summarize(in); got != tc.want {
				t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
			for i := range in {
				if in[i] != tc.in[i] {
					t.Fatalf("Summarize reordered its input: %v", in)
				}
			}
		})
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[n-1-i] = float64(i + 1) // descending, so that sorting matters
	}
	return out
}

func TestFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latency.json")
	in := &File{
		Started:  time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		Settings: map[string]string{"handovers": "20"},
		Series: []*Series{{Area: Handover, Backend: "etcd", Subject: "kvop", Target: 100 * time.Millisecond,
			Samples: []time.Duration{3 * time.Millisecond, -time.Millisecond}}},
	}
	if err := in.Write(path); err != nil {
		t.Fatal(err)
	}
	out, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Started.Equal(in.Started) || len(out.Series) != 1 || out.Series[0].Target != in.Series[0].Target ||
		len(out.Series[0].Samples) != 2 || out.Series[0].Samples[1] != -time.Millisecond {
		t.Errorf("round trip changed the file: %+v", out.Series[0])
	}
}
