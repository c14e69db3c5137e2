package leadership_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/leadership"
)

// Election safety under churn: candidates in separate processes are resigned, SIGKILLed and
// have their backend restarted under them, while an outside checker records every leadership
// and asserts that two never overlap and that terms strictly increase.
//
// What is recorded, and why. Each candidate's store is wrapped in a backendtest.LockSpy, which reports the
// lock itself: ACQUIRED <term> once the lock is granted (before the Candidate learns of it),
// RELEASED before an Unlock reaches the store, and LOST before the Candidate can see a loss.
// Every line carries the wall-clock time at which it was taken. On top of that the child prints
// what its reader hears from RunForElection: ELECTED <term> and DEPOSED. The parent adds KILLED
// (taken before SIGKILL) and EXIT (the child's output ended).
//
// Ordering. Lines reach the parent through one pipe per child, read by one goroutine per child
// that feeds one channel; the order in that channel is the order within each child, but not
// across children: a reader goroutine may forward a line late. So the checker orders by the
// timestamps instead. All children run on this host and read the same system clock, and every
// handover is causal — the old holder's RELEASED/LOST timestamp is taken before its Unlock (or
// loss reaction) reaches the server, the new holder's ACQUIRED after the server granted it — so
// in a correct run the old tenure's end is always earlier than the next one's start.
//
// The rules (verifyChurn):
//
//  1. No overlap: a tenure runs from its ACQUIRED to the first of its RELEASED, LOST, or the
//     parent's KILLED of that process (a killed child's leadership ends at the kill, whatever
//     its lease still says). Another ACQUIRED inside an open tenure is a violation.
//  2. Terms: ordered by time, every ACQUIRED term is greater than every earlier one — a new
//     leader's term exceeds every term seen before it.
//  3. What the reader hears matches the lock: an ELECTED term equals the term of that child's
//     current tenure. (It may be 0 when the lock was lost again before the reader asked for the
//     term; that is counted, not failed.)
//
// Liveness is checked as it happens: after a resign a new leader within 1 s (+ slack), after
// the leader's SIGKILL within the backend's TTL bound (+ slack), after a backend restart within
// the restart time plus the TTL bound.
//
// ELECTED and DEPOSED are not used for rule 1: a reader hears DEPOSED after a loss only once the
// campaign has released the lock (RunForElection promises the "false first" order for Resign
// and cancellation only), so a reader-level interval may legitimately end after the successor
// started. Such late notices are counted and logged.

const churnRole = "churn-candidate"

func init() { backendtest.RegisterChildRole(churnRole, runChurnCandidate) }

// runChurnCandidate campaigns in a child process, reports as described above, and resigns on
// SIGUSR1 (the parent's way to ask: backendtest children have no stdin).
func runChurnCandidate(spec backendtest.ChildSpec, out io.Writer) error {
	var mu sync.Mutex
	emit := func(kind string, value uint64) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "%s %d %d\n", kind, value, time.Now().UnixNano())
	}
	resign := make(chan os.Signal, 1)
	signal.Notify(resign, syscall.SIGUSR1)
	emit("PID", uint64(os.Getpid()))
	ctx := context.Background()
	// The parent may restart the server while this process starts: retry the open, as a
	// restarted pod would.
	store, err := spec.Open(ctx)
	for deadline := time.Now().Add(time.Minute); err != nil; store, err = spec.Open(ctx) {
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	c := leadership.NewCandidate(&backendtest.LockSpy{Store: store, Emit: emit}, spec.Args["key"], spec.Args["node"], ttl)
	elected, errs := c.RunForElection(ctx)
	for {
		select {
		case won, ok := <-elected:
			if !ok {
				return fmt.Errorf("campaign ended: %v", <-errs)
			}
			if won {
				emit("ELECTED", c.Term())
			} else {
				emit("DEPOSED", 0)
			}
		case <-errs:
		case <-resign:
			c.Resign()
		}
	}
}

// churnEvent is one record, from a candidate or from the parent.
type churnEvent struct {
	node  string
	kind  string
	value uint64
	ts    int64     // when it happened (the emitter's wall clock)
	recv  time.Time // when the parent received it
}

func (e churnEvent) String() string {
	return fmt.Sprintf("%s %s %d @%s", e.node, e.kind, e.value, time.Unix(0, e.ts).Format("15:04:05.000000"))
}

// churnMember is one candidate: a child process, or (boltdb) a campaign in this process.
type churnMember interface {
	node() string
	resign()
	kill() // ends it as a crash would; the parent has already recorded KILLED
}

// childMember is a candidate in a child process.
type childMember struct {
	name  string
	child *backendtest.Child
	mu    sync.Mutex
	pid   int
	dead  bool
}

func (m *childMember) node() string { return m.name }

func (m *childMember) resign() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dead && m.pid > 0 {
		_ = syscall.Kill(m.pid, syscall.SIGUSR1)
	}
}

func (m *childMember) kill() {
	m.mu.Lock()
	m.dead = true // no more signals: the PID may be reused once it is reaped
	m.mu.Unlock()
	m.child.Kill()
}

// lineReader lets a per-child goroutine read lines with Child.WaitLine, which reports a child
// whose output ended through Fatalf: from that goroutine it must end the goroutine, not the test.
type lineReader struct{ testing.TB }

func (lineReader) Helper()               {}
func (lineReader) Fatalf(string, ...any) { runtime.Goexit() }

// localMember is a candidate in this process on a store of its own (boltdb: one process owns
// the file). Its "kill" closes its store, the nearest thing to a crash in-process.
type localMember struct {
	name   string
	store  kvstore.Store
	cancel context.CancelFunc
	cand   *leadership.Candidate
}

func (m *localMember) node() string { return m.name }
func (m *localMember) resign()      { m.cand.Resign() }
func (m *localMember) kill()        { _ = m.store.Close(); m.cancel() }

// churn runs the rounds on one backend.
type churn struct {
	t       *testing.T
	tg      *backendtest.Target
	key     string
	events  chan churnEvent
	log     []churnEvent
	members map[string]churnMember
	gen     int

	// State in receipt order, for deciding what to do next (the verdict uses timestamps).
	believes map[string]bool // the reader was told ELECTED and not yet DEPOSED
	holds    map[string]bool // the lock spy says it holds
	alive    map[string]bool

	// Results.
	leaderKills, followerKills, resigns, restarts, rounds int
	failovers                                             []string
	maxKillFailover                                       time.Duration
	maxResignFailover                                     time.Duration
	maxRestartRecovery                                    time.Duration
}

const churnCandidates = 4

func TestElectionSafetyUnderChurn(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		seed := uint64(time.Now().UnixNano())
		if s := os.Getenv("KVOP_CHURN_SEED"); s != "" {
			seed, _ = strconv.ParseUint(s, 10, 64)
		}
		rng := rand.New(rand.NewPCG(seed, 0))
		if tg.SingleProcess {
			// One process owns a boltdb file: the candidates are campaigns in this process,
			// each on its own store, and a "kill" closes the leader's store (which releases its
			// lock at once) instead of a SIGKILL of a child.
			tg = tg.Fresh(t)
			t.Logf("%s: in-process candidates (the file belongs to one process); kills are store closes, no backend restarts", tg.Backend)
		} else {
			tg = tg.Private(t) // its own server, which this test restarts
		}
		ch := &churn{
			t: t, tg: tg, key: uniqueKey(t), events: make(chan churnEvent, 4096),
			members: map[string]churnMember{}, believes: map[string]bool{}, holds: map[string]bool{}, alive: map[string]bool{},
		}
		// A fixed number of each action, in a random order: the runtime stays predictable.
		plan := []string{"resign", "resign", "resign", "kill-leader", "kill-leader", "kill-leader", "kill-follower", "kill-follower", "restart", "restart"}
		if tg.SingleProcess {
			// In-process rounds take milliseconds: many more of them cost nothing.
			plan = nil
			for range 10 {
				plan = append(plan, "resign", "kill-leader", "kill-follower")
			}
		}
		rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
		t.Logf("%s: seed %d (KVOP_CHURN_SEED), plan %v", tg.Backend, seed, plan)

		for range churnCandidates {
			ch.spawn()
		}
		start := time.Now()
		ch.awaitLeader(30 * time.Second)
		for _, action := range plan {
			ch.round(action, rng)
		}
		ch.stop()
		ch.verify()
		t.Logf("%s: %d rounds in %s: %d leader kills, %d follower kills, %d resigns, %d backend restarts; max failover after a leader kill %s (bound %s), after a resign %s, after a restart %s; %s",
			tg.Backend, ch.rounds, time.Since(start).Round(time.Millisecond), ch.leaderKills, ch.followerKills, ch.resigns, ch.restarts,
			ch.maxKillFailover.Round(time.Millisecond), tg.TTLBound(ttl), ch.maxResignFailover.Round(time.Millisecond),
			ch.maxRestartRecovery.Round(time.Millisecond), strings.Join(ch.failovers, ", "))
	})
}

// spawn starts one more candidate with a node name never used before (a restarted process is a
// new candidate: node names must be unique among a key's candidates).
func (ch *churn) spawn() {
	ch.gen++
	name := fmt.Sprintf("c%d", ch.gen)
	ch.alive[name] = true
	if ch.tg.SingleProcess {
		ch.spawnLocal(name)
		return
	}
	child := backendtest.StartChild(ch.t, ch.tg, churnRole, map[string]string{"key": ch.key, "node": name})
	m := &childMember{name: name, child: child}
	ch.members[name] = m
	go func() {
		defer func() { ch.events <- churnEvent{node: name, kind: "EXIT", ts: time.Now().UnixNano(), recv: time.Now()} }()
		for {
			line := child.WaitLine(lineReader{ch.t}, "", 24*time.Hour) // ends this goroutine at EOF
			f := strings.Fields(line)
			if len(f) != 3 {
				continue // not ours (e.g. a log line)
			}
			v, err1 := strconv.ParseUint(f[1], 10, 64)
			ts, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 != nil || err2 != nil {
				continue
			}
			if f[0] == "PID" {
				m.mu.Lock()
				m.pid = int(v)
				m.mu.Unlock()
			}
			ch.events <- churnEvent{node: name, kind: f[0], value: v, ts: ts, recv: time.Now()}
		}
	}()
}

func (ch *churn) spawnLocal(name string) {
	store := ch.tg.Open(ch.t)
	emit := func(kind string, value uint64) {
		ch.events <- churnEvent{node: name, kind: kind, value: value, ts: time.Now().UnixNano(), recv: time.Now()}
	}
	c := leadership.NewCandidate(&backendtest.LockSpy{Store: store, Emit: emit}, ch.key, name, ttl)
	ctx, cancel := context.WithCancel(context.Background())
	ch.t.Cleanup(cancel)
	ch.members[name] = &localMember{name: name, store: store, cancel: cancel, cand: c}
	elected, errs := c.RunForElection(ctx)
	go func() {
		for range errs {
		}
	}()
	// One goroutine per candidate reads its channel, as the per-child reader does.
	go func() {
		for won := range elected {
			if won {
				emit("ELECTED", c.Term())
			} else {
				emit("DEPOSED", 0)
			}
		}
		emit("EXIT", 0)
	}()
}

// apply records e and updates the receipt-order state.
func (ch *churn) apply(e churnEvent) {
	ch.log = append(ch.log, e)
	switch e.kind {
	case "ELECTED":
		ch.believes[e.node] = true
	case "DEPOSED":
		ch.believes[e.node] = false
	case "ACQUIRED":
		ch.holds[e.node] = true
	case "LOST", "RELEASED":
		ch.holds[e.node] = false
	case "KILLED", "EXIT":
		ch.believes[e.node], ch.holds[e.node], ch.alive[e.node] = false, false, false
	}
}

// leader is the one live candidate that both holds the lock and was told so ("" if none or,
// transiently, more than one).
func (ch *churn) leader() string {
	var out []string
	for n := range ch.alive {
		if ch.alive[n] && ch.believes[n] && ch.holds[n] {
			out = append(out, n)
		}
	}
	if len(out) != 1 {
		return ""
	}
	return out[0]
}

// await applies events until cond holds; it fails the test after timeout.
func (ch *churn) await(what string, timeout time.Duration, cond func() bool) {
	ch.t.Helper()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case e := <-ch.events:
			ch.apply(e)
		case <-deadline:
			ch.t.Fatalf("%s: %s not within %s; last events: %v", ch.tg.Backend, what, timeout, ch.tail(20))
		}
	}
}

// drain applies the events that arrive within d.
func (ch *churn) drain(d time.Duration) {
	deadline := time.After(d)
	for {
		select {
		case e := <-ch.events:
			ch.apply(e)
		case <-deadline:
			return
		}
	}
}

func (ch *churn) tail(n int) []churnEvent { return ch.log[max(0, len(ch.log)-n):] }

func (ch *churn) awaitLeader(timeout time.Duration) string {
	ch.t.Helper()
	ch.await("a leader", timeout, func() bool { return ch.leader() != "" })
	return ch.leader()
}

// awaitElected waits for an ELECTED received after since (by a node other than not, if set)
// and returns how long after since it came.
func (ch *churn) awaitElected(since time.Time, not string, timeout time.Duration) time.Duration {
	ch.t.Helper()
	var took time.Duration
	ch.await("a new leader", timeout, func() bool {
		for _, e := range slices.Backward(ch.log) {
			if e.recv.Before(since) {
				return false
			}
			if e.kind == "ELECTED" && e.node != not && ch.alive[e.node] {
				took = e.recv.Sub(since)
				return true
			}
		}
		return false
	})
	return took
}

// killMember records KILLED (before the signal: the leadership ends no later than this) and
// kills the member.
func (ch *churn) killMember(name string) {
	ch.apply(churnEvent{node: name, kind: "KILLED", ts: time.Now().UnixNano(), recv: time.Now()})
	ch.members[name].kill()
}

func (ch *churn) round(action string, rng *rand.Rand) {
	ch.t.Helper()
	ch.rounds++
	leader := ch.awaitLeader(30 * time.Second)
	slack := 3 * time.Second // a loaded machine: -race, two cores, four backends at once
	switch action {
	case "resign":
		ch.resigns++
		since := time.Now()
		ch.members[leader].resign()
		took := ch.awaitElected(since, "", leadership.DefaultResignPause+slack+5*time.Second)
		ch.maxResignFailover = max(ch.maxResignFailover, took)
		if took > leadership.DefaultResignPause+slack {
			ch.t.Errorf("%s: a new leader %s after the resign, bound %s", ch.tg.Backend, took, leadership.DefaultResignPause)
		}
	case "kill-leader":
		ch.leaderKills++
		since := time.Now()
		ch.killMember(leader)
		ch.spawn() // the replacement campaigns too, as a restarted pod would
		bound := ch.tg.TTLBound(ttl)
		took := ch.awaitElected(since, leader, bound+slack+10*time.Second)
		ch.maxKillFailover = max(ch.maxKillFailover, took)
		ch.failovers = append(ch.failovers, took.Round(time.Millisecond).String())
		if took > bound+slack {
			ch.t.Errorf("%s: failover after the leader's kill took %s, bound %s", ch.tg.Backend, took, bound)
		}
	case "kill-follower":
		ch.followerKills++
		var followers []string
		for n := range ch.alive {
			if ch.alive[n] && n != leader {
				followers = append(followers, n)
			}
		}
		slices.Sort(followers)
		ch.killMember(followers[rng.IntN(len(followers))])
		ch.spawn()
	case "restart":
		ch.restarts++
		since := time.Now()
		ch.tg.Server.Kill()
		if err := ch.tg.Server.Restart(); err != nil {
			ch.t.Fatalf("%s: restarting the server: %v", ch.tg.Backend, err)
		}
		// The outage may cost the leader its lock (a ZooKeeper client gives it up after a
		// quarter of its session timeout without the server): let losses arrive, then wait for
		// whoever leads now.
		ch.drain(time.Second)
		ch.awaitLeader(ch.tg.TTLBound(ttl) + slack + 20*time.Second)
		ch.maxRestartRecovery = max(ch.maxRestartRecovery, time.Since(since))
	}
	// Keep churnCandidates alive: a child that died on its own (not expected) is replaced.
	live := 0
	for n := range ch.alive {
		if ch.alive[n] {
			live++
		}
	}
	for range churnCandidates - live {
		ch.spawn()
	}
}

// stop kills every candidate (recording the kills) and collects what is still in flight.
func (ch *churn) stop() {
	ch.drain(200 * time.Millisecond)
	for name := range ch.members {
		if ch.alive[name] {
			ch.killMember(name)
		}
	}
	ch.drain(200 * time.Millisecond)
}

// verify checks the rules in the comment at the top of this file on the timestamp-ordered log.
func (ch *churn) verify() {
	ch.t.Helper()
	log := slices.Clone(ch.log)
	slices.SortStableFunc(log, func(a, b churnEvent) int { return cmp.Compare(a.ts, b.ts) })
	r := checkChurn(log)
	if r.unexpectedExits > 0 {
		ch.t.Errorf("%s: %d candidate processes exited without being killed (see their stderr above)", ch.tg.Backend, r.unexpectedExits)
	}
	if len(r.violations) > 0 {
		ch.t.Errorf("%s: election safety violated:\n  %s\nlog (by time):\n%s", ch.tg.Backend, strings.Join(r.violations, "\n  "), formatEvents(log))
	}
	ch.t.Logf("%s: %d events checked, last term %d; %d locks lost (not released), %d ELECTED with term 0 (lost before read), %d late DEPOSED notices",
		ch.tg.Backend, len(log), r.lastTerm, r.losses, r.zeroTerms, r.lateNotices)
}

type churnVerdict struct {
	violations                              []string
	lastTerm                                uint64
	lateNotices, zeroTerms, unexpectedExits int
	losses                                  int // tenures that ended by LOST
}

// checkChurn applies the rules to a log sorted by timestamp.
func checkChurn(log []churnEvent) churnVerdict {
	var r churnVerdict
	holder := ""
	tenureTerm := map[string]uint64{}
	dead := map[string]bool{}
	believes := map[string]bool{}
	for i, e := range log {
		if dead[e.node] {
			continue // a line the child wrote before it died but that arrived after the kill
		}
		switch e.kind {
		case "ACQUIRED":
			if holder != "" && holder != e.node {
				r.violations = append(r.violations, fmt.Sprintf("%s acquired the lock while %s held it (event %d)", e.node, holder, i))
			}
			if e.value != 0 {
				if e.value <= r.lastTerm {
					r.violations = append(r.violations, fmt.Sprintf("%s acquired with term %d after term %d (event %d)", e.node, e.value, r.lastTerm, i))
				}
				r.lastTerm = e.value
			}
			holder = e.node
			tenureTerm[e.node] = e.value
		case "RELEASED", "LOST":
			if e.kind == "LOST" {
				r.losses++
			}
			if holder == e.node {
				holder = ""
			}
		case "KILLED", "EXIT":
			if e.kind == "EXIT" {
				r.unexpectedExits++ // a killed child's EXIT is skipped above
			}
			dead[e.node] = true
			if holder == e.node {
				holder = ""
			}
		case "ELECTED":
			switch {
			case e.value == 0:
				r.zeroTerms++
			case tenureTerm[e.node] != 0 && e.value != tenureTerm[e.node]:
				r.violations = append(r.violations, fmt.Sprintf("%s was told term %d but its lock has term %d (event %d)", e.node, e.value, tenureTerm[e.node], i))
			}
			for other, b := range believes {
				if b && other != e.node && !dead[other] {
					r.lateNotices++ // other's reader had not yet heard DEPOSED (see the file comment)
				}
			}
			believes[e.node] = true
		case "DEPOSED":
			believes[e.node] = false
		}
	}
	return r
}

// TestChurnCheckerCatchesViolations feeds the checker made-up logs: a checker that passes
// everything would make the churn test worthless.
func TestChurnCheckerCatchesViolations(t *testing.T) {
	ev := func(node, kind string, value uint64) churnEvent {
		return churnEvent{node: node, kind: kind, value: value}
	}
	for _, tc := range []struct {
		name string
		log  []churnEvent
		bad  bool
	}{
		{"handover after release", []churnEvent{ev("a", "ACQUIRED", 5), ev("a", "ELECTED", 5), ev("a", "RELEASED", 0), ev("b", "ACQUIRED", 7), ev("b", "ELECTED", 7)}, false},
		{"failover after kill", []churnEvent{ev("a", "ACQUIRED", 5), ev("a", "KILLED", 0), ev("b", "ACQUIRED", 9)}, false},
		{"failover after loss", []churnEvent{ev("a", "ACQUIRED", 5), ev("a", "LOST", 0), ev("b", "ACQUIRED", 9), ev("a", "DEPOSED", 0)}, false},
		{"overlap", []churnEvent{ev("a", "ACQUIRED", 5), ev("b", "ACQUIRED", 7), ev("a", "RELEASED", 0)}, true},
		{"term went back", []churnEvent{ev("a", "ACQUIRED", 5), ev("a", "RELEASED", 0), ev("b", "ACQUIRED", 4)}, true},
		{"term repeated", []churnEvent{ev("a", "ACQUIRED", 5), ev("a", "RELEASED", 0), ev("b", "ACQUIRED", 5)}, true},
		{"reader told another term", []churnEvent{ev("a", "ACQUIRED", 5), ev("a", "ELECTED", 3)}, true},
	} {
		if got := len(checkChurn(tc.log).violations) > 0; got != tc.bad {
			t.Errorf("%s: violation found = %v, want %v", tc.name, got, tc.bad)
		}
	}
}

func formatEvents(log []churnEvent) string {
	var b strings.Builder
	for _, e := range log {
		fmt.Fprintf(&b, "  %v\n", e)
	}
	return b.String()
}
