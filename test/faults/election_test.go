//go:build faults

package faults

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/leadership"
)

// The election checker of these tests. Its candidates run in this process, each on a store of
// its own, and two kinds of records reach one ordered channel:
//
//   - what the lock does, from a backendtest.LockSpy around each candidate's store: ACQUIRED <term> once the
//     store granted the lock (before the Candidate learns of it), RELEASED before an Unlock
//     reaches the store, LOST before the Candidate can see a loss. Each is sent synchronously
//     at that point, so the channel holds them in causal order: an old holder's RELEASED or
//     LOST is always ahead of its successor's ACQUIRED, which the store could grant only after
//     the release or the loss.
//   - what each candidate's reader hears from RunForElection: ELECTED <term> and DEPOSED, read
//     by one goroutine for all candidates.
//
// Rules: a lock tenure runs from ACQUIRED to the first RELEASED or LOST; another ACQUIRED inside
// it means two leaders at once. ACQUIRED terms strictly increase. An ELECTED term is the term of
// that candidate's current tenure. A reader may hear DEPOSED after its successor was elected
// when the lock was lost (not resigned): the campaign releases a lost lock before it tells the
// reader, and RunForElection promises "false before release" only for Resign and cancellation.
// Those late notices are counted and logged, not failed: after a loss, fencing terms are what
// keeps the old leader harmless.

type electionEvent struct {
	node  string
	kind  string
	value uint64
	at    time.Time
}

// election is n candidates for one key, watched by the checker.
type election struct {
	t      *testing.T
	events chan electionEvent
	cancel context.CancelFunc
	done   chan struct{} // closed when every campaign has ended

	mu       sync.Mutex
	log      []electionEvent
	believes map[string]bool
	holds    map[string]bool
}

// startElection starts n candidates, each on a store from open, campaigning for key.
func startElection(t *testing.T, open func() kvstore.Store, key string, n int, ttl time.Duration) *election {
	ctx, cancel := context.WithCancel(context.Background())
	el := &election{t: t, events: make(chan electionEvent, 4096), cancel: cancel, done: make(chan struct{}),
		believes: map[string]bool{}, holds: map[string]bool{}}
	cands := make([]*leadership.Candidate, n)
	cases := make([]reflect.SelectCase, n)
	for i := range n {
		node := fmt.Sprintf("cand-%d", i)
		spy := &backendtest.LockSpy{Store: open(), Emit: func(kind string, v uint64) {
			el.events <- electionEvent{node: node, kind: kind, value: v, at: time.Now()}
		}}
		cands[i] = leadership.NewCandidate(spy, key, node, ttl)
		elected, errs := cands[i].RunForElection(ctx)
		go func() {
			for range errs {
			}
		}()
		cases[i] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(elected)}
	}
	// One goroutine reads every reader channel, as pkg/leadership's own checker does.
	go func() {
		defer close(el.done)
		for open := n; open > 0; {
			i, v, ok := reflect.Select(cases)
			if !ok {
				cases[i].Chan = reflect.Value{}
				open--
				continue
			}
			kind, term := "DEPOSED", uint64(0)
			if v.Bool() {
				kind, term = "ELECTED", cands[i].Term()
			}
			el.events <- electionEvent{node: cands[i].Node(), kind: kind, value: term, at: time.Now()}
		}
	}()
	go func() {
		for e := range el.events {
			el.mu.Lock()
			el.log = append(el.log, e)
			switch e.kind {
			case "ELECTED":
				el.believes[e.node] = true
			case "DEPOSED":
				el.believes[e.node] = false
			case "ACQUIRED":
				el.holds[e.node] = true
			case "LOST", "RELEASED":
				el.holds[e.node] = false
			}
			el.mu.Unlock()
		}
	}()
	return el
}

// leader returns the candidate that holds the lock and was told so ("" if none, or for a
// moment more than one, see above).
func (el *election) leader() string {
	el.mu.Lock()
	defer el.mu.Unlock()
	var out []string
	for n, b := range el.believes {
		if b && el.holds[n] {
			out = append(out, n)
		}
	}
	if len(out) != 1 {
		return ""
	}
	return out[0]
}

// awaitLeader waits until a candidate leads and returns it with how long that took.
func (el *election) awaitLeader(timeout time.Duration) (string, time.Duration) {
	el.t.Helper()
	start := time.Now()
	for {
		if l := el.leader(); l != "" {
			return l, time.Since(start)
		}
		if time.Since(start) > timeout {
			el.t.Fatalf("no leader within %s; last events: %v", timeout, el.tail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failoverSince reports whether the lock changed hands after since (a loss, release or new
// tenure), and when a tenure began after that.
func (el *election) failoverSince(since time.Time) (changed bool, took time.Duration) {
	el.mu.Lock()
	defer el.mu.Unlock()
	for _, e := range el.log {
		if !e.at.After(since) {
			continue
		}
		switch e.kind {
		case "LOST", "RELEASED":
			changed = true
		case "ACQUIRED":
			return true, e.at.Sub(since)
		}
	}
	return changed, 0
}

func (el *election) tail(n int) []electionEvent {
	el.mu.Lock()
	defer el.mu.Unlock()
	return slices.Clone(el.log[max(0, len(el.log)-n):])
}

// stop ends the campaigns and checks the rules on everything recorded.
func (el *election) stop() {
	el.t.Helper()
	el.cancel()
	select {
	case <-el.done:
	case <-time.After(30 * time.Second):
		el.t.Errorf("campaigns did not end within 30s of their cancellation")
	}
	time.Sleep(100 * time.Millisecond) // let the recorder take the last events
	el.mu.Lock()
	log := slices.Clone(el.log)
	el.mu.Unlock()
	slices.SortStableFunc(log, func(a, b electionEvent) int { return cmp.Compare(a.at.UnixNano(), b.at.UnixNano()) })

	var violations []string
	holder, lastTerm, tenures, late := "", uint64(0), 0, 0
	tenureTerm := map[string]uint64{}
	believes := map[string]bool{}
	for i, e := range log {
		switch e.kind {
		case "ACQUIRED":
			tenures++
			if holder != "" && holder != e.node {
				violations = append(violations, fmt.Sprintf("%s acquired while %s held the lock (event %d)", e.node, holder, i))
			}
			if e.value != 0 {
				if e.value <= lastTerm {
					violations = append(violations, fmt.Sprintf("%s acquired with term %d after term %d (event %d)", e.node, e.value, lastTerm, i))
				}
				lastTerm = e.value
			}
			holder, tenureTerm[e.node] = e.node, e.value
		case "RELEASED", "LOST":
			if holder == e.node {
				holder = ""
			}
		case "ELECTED":
			if e.value != 0 && tenureTerm[e.node] != 0 && e.value != tenureTerm[e.node] {
				violations = append(violations, fmt.Sprintf("%s was told term %d, its lock has term %d (event %d)", e.node, e.value, tenureTerm[e.node], i))
			}
			for other, b := range believes {
				if b && other != e.node {
					late++
				}
			}
			believes[e.node] = true
		case "DEPOSED":
			believes[e.node] = false
		}
	}
	if len(violations) > 0 {
		var b strings.Builder
		for _, e := range log {
			fmt.Fprintf(&b, "  %s %s %d @%s\n", e.node, e.kind, e.value, e.at.Format("15:04:05.000000"))
		}
		el.t.Errorf("election safety violated:\n  %s\nlog:\n%s", strings.Join(violations, "\n  "), b.String())
	}
	el.t.Logf("election: %d lock tenures, last term %d, no overlap; %d late DEPOSED notices after losses", tenures, lastTerm, late)
}
