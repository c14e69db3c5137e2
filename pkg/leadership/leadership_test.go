package leadership_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/leadership"
)

const ttl = 2 * time.Second

func TestMain(m *testing.M) {
	backendtest.RegisterChildRole("candidate", runChildCandidate)
	backendtest.Main(m)
}

// runChildCandidate campaigns in a child process and prints "ELECTED <term>" when it leads,
// then holds leadership until the parent kills it.
func runChildCandidate(spec backendtest.ChildSpec, out io.Writer) error {
	ctx := context.Background()
	store, err := spec.Open(ctx)
	if err != nil {
		return err
	}
	c := leadership.NewCandidate(store, spec.Args["key"], spec.Args["node"], ttl)
	elected, errs := c.RunForElection(ctx)
	for {
		select {
		case won, ok := <-elected:
			if !ok {
				return fmt.Errorf("campaign ended: %v", <-errs)
			}
			if won {
				fmt.Fprintf(out, "ELECTED %d\n", c.Term())
			}
		case <-errs:
		}
	}
}

func uniqueKey(t *testing.T) string {
	return "leadership-test/" + strings.ReplaceAll(t.Name(), "/", "-") + "/" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// transition is one leadership change as the checker saw it.
type transition struct {
	node   string
	leader bool
	term   uint64
	at     time.Time
}

// checker reads every candidate's elected channel in ONE goroutine. A leader's "false" is
// received before its campaign releases the lock (the send blocks until received), and the next
// leader's "true" is sent only after it got the lock, so the checker's log is in causal order:
// two leaders at once would show as two "true" without a "false" between them.
type checker struct {
	t       *testing.T
	changes chan transition
	log     []transition
}

func newChecker(t *testing.T, ctx context.Context, cands []*leadership.Candidate, electeds []<-chan bool) *checker {
	ck := &checker{t: t, changes: make(chan transition, 256)}
	cases := make([]reflect.SelectCase, len(electeds))
	for i, ch := range electeds {
		cases[i] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)}
	}
	go func() {
		defer close(ck.changes)
		open := len(cases)
		for open > 0 {
			i, v, ok := reflect.Select(cases)
			if !ok {
				cases[i].Chan = reflect.Value{} // closed: never selected again
				open--
				continue
			}
			ck.changes <- transition{node: cands[i].Node(), leader: v.Bool(), term: cands[i].Term(), at: time.Now()}
		}
	}()
	return ck
}

// next waits for the next transition.
func (ck *checker) next(timeout time.Duration) transition {
	ck.t.Helper()
	select {
	case tr, ok := <-ck.changes:
		if !ok {
			ck.t.Fatal("every campaign ended")
		}
		ck.log = append(ck.log, tr)
		return tr
	case <-time.After(timeout):
		ck.t.Fatalf("no leadership change within %s (log: %v)", timeout, ck.log)
		return transition{}
	}
}

// verify asserts that leaderships never overlap and that terms strictly increase.
func (ck *checker) verify() {
	ck.t.Helper()
	current, lastTerm := "", uint64(0)
	for _, tr := range ck.log {
		switch {
		case tr.leader && current != "":
			ck.t.Fatalf("%s became leader while %s still led: %v", tr.node, current, ck.log)
		case tr.leader:
			if tr.term <= lastTerm {
				ck.t.Fatalf("term did not increase: %s got %d after %d: %v", tr.node, tr.term, lastTerm, ck.log)
			}
			current, lastTerm = tr.node, tr.term
		case tr.node == current:
			current = ""
		}
	}
}

func TestSingleLeaderOverResignAndCancelRounds(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		key := uniqueKey(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const n = 3
		cands := make([]*leadership.Candidate, n)
		electeds := make([]<-chan bool, n)
		cancels := make([]context.CancelFunc, n)
		byNode := map[string]int{}
		for i := range n {
			c := leadership.NewCandidate(tg.Open(t), key, fmt.Sprintf("node-%d", i), ttl)
			cctx, ccancel := context.WithCancel(ctx)
			cands[i], cancels[i], byNode[c.Node()] = c, ccancel, i
			electeds[i], _ = c.RunForElection(cctx)
		}
		ck := newChecker(t, ctx, cands, electeds)
		reader := tg.Open(t)

		waitLeader := func() transition {
			for {
				tr := ck.next(10 * time.Second)
				if tr.leader {
					return tr
				}
			}
		}
		leader := waitLeader()
		const rounds = 6
		for round := range rounds {
			// The term is stored with the identity: readers see both in the leader key.
			pair, err := reader.Get(ctx, key)
			if err != nil || string(pair.Value) != leader.node || pair.LastIndex != leader.term {
				t.Fatalf("round %d: leader key = %v, %v; want %s with term %d", round, pair, err, leader.node, leader.term)
			}
			i := byNode[leader.node]
			start := time.Now()
			if round == rounds-1 {
				cancels[i]() // a cancelled campaign releases at once, like a Resign
			} else {
				cands[i].Resign()
			}
			next := waitLeader()
			if next.node == leader.node {
				t.Fatalf("round %d: %s won again although others were waiting", round, next.node)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("round %d: handover took %s, the bound is 1s", round, d)
			}
			leader = next
		}
		ck.verify()
	})
}

func TestLeaderCrashFailsOverWithinTTLBound(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		tg = tg.Fresh(t)
		key := uniqueKey(t)
		child := backendtest.StartChild(t, tg, "candidate", map[string]string{"key": key, "node": "crasher"})
		line := child.WaitLine(t, "ELECTED ", 20*time.Second)
		crashTerm, _ := strconv.ParseUint(strings.TrimPrefix(line, "ELECTED "), 10, 64)

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var survivor *leadership.Candidate
		var elected <-chan bool
		if !tg.SingleProcess { // wait beside the leader, as a standby would
			survivor = leadership.NewCandidate(tg.Open(t), key, "survivor", ttl)
			elected, _ = survivor.RunForElection(ctx)
		}
		killed := time.Now()
		child.Kill()
		if tg.SingleProcess { // the file is free only once its owner died
			survivor = leadership.NewCandidate(tg.Open(t), key, "survivor", ttl)
			elected, _ = survivor.RunForElection(ctx)
		}
		bound := tg.TTLBound(ttl) + 500*time.Millisecond
		for {
			select {
			case won := <-elected:
				if !won {
					continue
				}
				took := time.Since(killed)
				t.Logf("%s: failover after SIGKILL of the leader took %s (bound %s)", tg.Backend, took, bound)
				if took > bound+time.Second { // 1s of slack for a loaded CI machine
					t.Fatalf("failover took %s, bound is %s", took, bound)
				}
				if survivor.Term() <= crashTerm {
					t.Fatalf("term after failover %d is not above the crashed leader's %d", survivor.Term(), crashTerm)
				}
				return
			case <-time.After(bound + 5*time.Second):
				t.Fatalf("no failover within %s", bound+5*time.Second)
			}
		}
	})
}

func TestFollowerSeesEveryChange(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		key := uniqueKey(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f := leadership.NewFollower(tg.Open(t), key)
		leaders, _ := f.FollowElection(ctx)
		expect := func(want string) {
			t.Helper()
			select {
			case got := <-leaders:
				if got != want {
					t.Fatalf("follower got %q, want %q", got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("follower did not report %q", want)
			}
		}
		expect("") // nobody leads yet

		a := leadership.NewCandidate(tg.Open(t), key, "a", ttl)
		actx, acancel := context.WithCancel(ctx)
		aElected, _ := a.RunForElection(actx)
		if !<-aElected {
			t.Fatal("a was not elected")
		}
		expect("a")
		if f.Term() != a.Term() || f.Leader() != "a" {
			t.Fatalf("follower says %s term %d, candidate a has term %d", f.Leader(), f.Term(), a.Term())
		}

		b := leadership.NewCandidate(tg.Open(t), key, "b", ttl)
		bElected, _ := b.RunForElection(ctx)
		acancel() // a's campaign ends and releases: the follower sees the gap, then b
		for range aElected {
		}
		if !<-bElected {
			t.Fatal("b was not elected")
		}
		for {
			select {
			case got := <-leaders:
				if got == "" {
					continue // the moment between a's release and b's win may or may not be seen
				}
				if got != "b" {
					t.Fatalf("follower got %q, want b", got)
				}
				if f.Term() != b.Term() || f.Term() <= a.Term() {
					t.Fatalf("follower term %d, b's term %d (a's was %d)", f.Term(), b.Term(), a.Term())
				}
				return
			case <-time.After(10 * time.Second):
				t.Fatal("follower did not report b")
			}
		}
	})
}

func TestFollowerSurvivesServerRestart(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		if tg.Server == nil {
			return // the embedded store has no server to lose
		}
		// A private server: restarting the shared one would disturb parallel tests.
		tg = tg.Private(t)
		srv := tg.Server
		key := uniqueKey(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := leadership.NewCandidate(tg.Open(t), key, "steady", 10*time.Second)
		steadyCtx, stopSteady := context.WithCancel(ctx)
		defer stopSteady()
		elected, _ := c.RunForElection(steadyCtx)
		if !<-elected {
			t.Fatal("not elected")
		}
		f := leadership.NewFollower(tg.Open(t), key)
		leaders, _ := f.FollowElection(ctx)
		if got := <-leaders; got != "steady" {
			t.Fatalf("follower got %q, want steady", got)
		}
		// Keep reading both channels through the outage: a campaign or a follower whose
		// reader stopped would stall on its next send.
		go func() {
			for range elected {
			}
		}()
		seen := make(chan string, 256)
		go func() {
			for l := range leaders {
				seen <- l
			}
		}()
		srv.Kill()
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		// The outage may or may not have cost "steady" its lock (a ZooKeeper session can
		// expire); either way it campaigns on and leads again, and the follower says so.
		eventually(t, 30*time.Second, func() bool { return f.Leader() == "steady" && c.IsLeader() })
		// The follower still follows: a handover after the outage reaches it.
		second := leadership.NewCandidate(tg.Open(t), key, "second", 10*time.Second)
		secondElected, _ := second.RunForElection(ctx)
		stopSteady()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case won := <-secondElected:
				if won && f.Leader() == "second" {
					return
				}
			case got := <-seen:
				if got == "second" {
					return
				}
			case <-deadline:
				t.Fatalf("after the restart the follower did not report the handover (says %q)", f.Leader())
			}
		}
	})
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCampaignEndsWithErrorWhenStoreCloses(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		store := tg.Open(t)
		c := leadership.NewCandidate(store, uniqueKey(t), "x", ttl)
		elected, errs := c.RunForElection(context.Background())
		if !<-elected {
			t.Fatal("not elected")
		}
		_ = store.Close()
		deadline := time.After(tg.TTLBound(ttl) + 5*time.Second)
		for {
			select {
			case won, ok := <-elected:
				if ok && won {
					t.Fatal("elected again on a closed store")
				}
				if !ok {
					err := <-errs
					if err == nil || !errors.Is(err, kvstore.ErrClosed) {
						t.Fatalf("campaign ended with %v, want an error wrapping kvstore.ErrClosed", err)
					}
					return
				}
			case <-deadline:
				t.Fatal("campaign did not end after the store closed")
			}
		}
	})
}
