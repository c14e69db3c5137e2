//go:build bench

package latency

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kvop/kvop/bench/internal/results"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/pkg/kvstore"
)

// Targets of issue 10 (and shared/spec/leadership.md).
const (
	handoverTarget = 100 * time.Millisecond
	followerTarget = 50 * time.Millisecond
	crashSlack     = 500 * time.Millisecond // crash target: the backend's TTL bound + this
)

// TestLatency runs every latency measurement one after the other (never in parallel: on a
// small machine they would disturb each other) and writes them to BENCH_LATENCY_OUT.
// A measurement that fails is recorded with its error and the others go on.
func TestLatency(t *testing.T) {
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{file: results.File{Started: time.Now().UTC(), Settings: cfg.settings()}}
	defer rec.write(t, cfg.out)

	targets := map[kvstore.Backend]*backendtest.Target{}
	for _, b := range cfg.backends {
		targets[b] = backendtest.Get(t, b) // starts the shared server of b
	}

	for _, b := range cfg.backends {
		tg := targets[b]
		hand := rec.series(results.Handover, b, "kvop", "", handoverTarget)
		foll := rec.series(results.Follower, b, "kvop", "", followerTarget)
		rec.run(t, "kvop/handover/"+string(b), func(t *testing.T) { kvopHandover(t, tg, cfg, hand, foll) }, hand, foll)

		bound := tg.TTLBound(cfg.ttl)
		crash := rec.series(results.Crash, b, "kvop", fmt.Sprintf("TTL %s, bound %s", cfg.ttl, bound), bound+crashSlack)
		rec.run(t, "kvop/crash/"+string(b), func(t *testing.T) { kvopCrash(t, tg, cfg, crash) }, crash)
	}

	if cfg.peer(peerEtcd) {
		tg := backendtest.Get(t, kvstore.Etcd)
		etcdPeer(t, rec, tg, cfg)
	}
	if cfg.peer(peerConsul) {
		tg := backendtest.Get(t, kvstore.Consul)
		consulPeer(t, rec, tg, cfg)
	}
	if cfg.peer(peerClientGo) {
		clientGoPeer(t, rec, cfg)
	}
}

// recorder collects the series in the order they were set up and writes them at the end.
type recorder struct {
	mu   sync.Mutex
	file results.File
}

// series adds a kvop series (a peer series with peer).
func (r *recorder) series(area string, b kvstore.Backend, subject, note string, target time.Duration) *results.Series {
	s := &results.Series{Area: area, Backend: string(b), Subject: subject, Note: note, Target: target}
	r.mu.Lock()
	r.file.Series = append(r.file.Series, s)
	r.mu.Unlock()
	return s
}

func (r *recorder) peer(area string, b kvstore.Backend, subject, note string) *results.Series {
	s := r.series(area, b, subject, note, 0)
	s.Peer = true
	return s
}

// skip records a peer series that was not run, with the value the notes document for it.
func (r *recorder) skip(area string, b kvstore.Backend, subject, note, why, known string) {
	s := r.peer(area, b, subject, note)
	s.Skipped, s.Known = why, known
}

// run runs fn as a subtest; if it fails, every series it was filling gets an error saying so.
func (r *recorder) run(t *testing.T, name string, fn func(t *testing.T), filling ...*results.Series) {
	t.Run(name, func(t *testing.T) {
		defer func() {
			if t.Failed() {
				for _, s := range filling {
					if s.Error == "" {
						s.Error = fmt.Sprintf("failed after %d samples (see the harness log)", len(s.Samples))
					}
				}
			}
		}()
		fn(t)
		for _, s := range filling {
			if len(s.Samples) == 0 {
				continue // e.g. a start-up step that fills the series later
			}
			t.Logf("%-8s %-9s %-40s %s", s.Area, s.Backend, s.Subject+" "+s.Note, summary(s.Samples))
		}
	})
}

func (r *recorder) write(t *testing.T, path string) {
	if path == "" {
		t.Log("BENCH_LATENCY_OUT is not set: results were only logged")
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.file.Write(path); err != nil {
		t.Errorf("writing results: %v", err)
		return
	}
	t.Logf("wrote %s", path)
}

func summary(ds []time.Duration) string {
	s := results.Summarize(results.Durations(ds))
	if s.N == 0 {
		return "no samples"
	}
	ms := func(ns float64) string { return fmt.Sprintf("%.1fms", ns/1e6) }
	return fmt.Sprintf("n=%d median=%s p90=%s max=%s", s.N, ms(s.Median), ms(s.P90), ms(s.Max))
}

// stamp is a value with the time it arrived: every event the harness times is stamped by a
// goroutine that does nothing but receive it, so that a busy measuring loop does not delay it.
type stamp[T any] struct {
	v  T
	at time.Time
}

// stamped forwards in to a large buffered channel, stamping each value as it arrives.
func stamped[T any](in <-chan T) <-chan stamp[T] {
	out := make(chan stamp[T], 1024)
	go func() {
		defer close(out)
		for v := range in {
			out <- stamp[T]{v, time.Now()}
		}
	}()
	return out
}

// waitFor returns the arrival time of the first value from ch that arrived no earlier than
// after and satisfies match; older values are dropped.
func waitFor[T any](ch <-chan stamp[T], after time.Time, timeout time.Duration, match func(T) bool) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case s, ok := <-ch:
			if !ok {
				return time.Time{}, fmt.Errorf("channel closed while waiting")
			}
			if !s.at.Before(after) && match(s.v) {
				return s.at, nil
			}
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("nothing within %s", timeout)
		}
	}
}

// logErrs prints a campaign's or follower's errors as they come; not through t, since they
// may arrive after the test that started them has ended.
func logErrs(who string, errs <-chan error) {
	go func() {
		for err := range errs {
			fmt.Fprintf(os.Stderr, "latency: %s: %v\n", who, err)
		}
	}()
}

// uniqueKey gives every run keys of its own on the shared servers.
func uniqueKey(what string) string {
	return fmt.Sprintf("kvop-bench/%s-%x", what, time.Now().UnixNano())
}
