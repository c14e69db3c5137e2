package leaderlease

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers/storepool"
	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/leadership"
)

// runtime owns the running elections of one manager. It is a manager Runnable: its context
// is the parent of every election, so the campaigns end (and release) when the manager stops.
type runtime struct {
	// events carries a LeaderLease each time its election saw something (a leader change, an
	// error, a candidate elected); the controller watches it through source.Channel.
	events chan event.GenericEvent

	started chan struct{} // closed once Start has set ctx
	ctx     context.Context

	mu        sync.Mutex
	stopped   bool // Start returned or is returning: no goroutine may be added
	elections map[types.NamespacedName]*election
	wg        sync.WaitGroup // every goroutine of every election, ended or not
	// releasePool lets the store pool close its stores (storepool.Pool.Hold); nil for none.
	releasePool func()
}

func newRuntime() *runtime {
	return &runtime{
		events:    make(chan event.GenericEvent, 1024),
		started:   make(chan struct{}),
		elections: map[types.NamespacedName]*election{},
	}
}

// Start implements manager.Runnable. It returns once every campaign has ended, so that their
// releases are attempted before the manager returns.
func (rt *runtime) Start(ctx context.Context) error {
	rt.ctx = ctx
	close(rt.started)
	<-ctx.Done()
	rt.mu.Lock()
	rt.stopped = true
	rt.mu.Unlock()
	rt.wg.Wait()
	if rt.releasePool != nil {
		rt.releasePool()
	}
	return nil
}

// context returns the runtime's context, waiting until the runtime started: the first
// reconciles may run before the manager has started every runnable.
func (rt *runtime) context(ctx context.Context) (context.Context, error) {
	select {
	case <-rt.started:
		return rt.ctx, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// get returns the running election of a lease, nil when there is none.
func (rt *runtime) get(lease types.NamespacedName) *election {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.elections[lease]
}

// stop ends the election of a lease (if any) and returns a channel closed once every one of
// its campaigns has released the key.
func (rt *runtime) stop(lease types.NamespacedName) <-chan struct{} {
	rt.mu.Lock()
	e := rt.elections[lease]
	delete(rt.elections, lease)
	rt.mu.Unlock()
	if e == nil {
		done := make(chan struct{})
		close(done)
		return done
	}
	return e.stop()
}

// spawn runs fn in a goroutine counted by the runtime and by wg; it returns false (and runs
// nothing) once the runtime is stopping.
func (rt *runtime) spawn(wg *sync.WaitGroup, fn func()) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.stopped {
		return false
	}
	rt.wg.Add(1)
	wg.Add(1)
	go func() {
		defer rt.wg.Done()
		defer wg.Done()
		fn()
	}()
	return true
}

// electionParams are what an election is built from; a change of any means a new election.
type electionParams struct {
	store *storepool.Store
	key   string // in the store, prefix included
	ttl   time.Duration
}

func (p electionParams) same(e *election) bool {
	return p.store == e.store && p.store.Generation == e.generation && p.key == e.key && p.ttl == e.ttl
}

// start replaces the election of a lease with a new one. holdFor (may be "") is the pod that
// led before: it campaigns alone until it is elected or the hold ends (the restart rule).
func (rt *runtime) start(ctx context.Context, lease types.NamespacedName, p electionParams, holdFor string, now time.Time) *election {
	old := rt.stop(lease)
	<-old // the old campaigns' releases must not land after the new campaigns won
	ectx, cancel := context.WithCancel(ctx)
	e := &election{
		rt: rt, lease: lease, store: p.store, generation: p.store.Generation, key: p.key, ttl: p.ttl,
		ctx: ectx, cancel: cancel, done: make(chan struct{}),
		follower:  leadership.NewFollower(p.store, p.key),
		campaigns: map[string]*campaign{},
	}
	if holdFor != "" {
		e.holdFor = holdFor
		e.holdUntil = now.Add(kvstore.TTLBound(p.store.Backend, p.ttl, 0))
	}
	rt.mu.Lock()
	rt.elections[lease] = e
	rt.mu.Unlock()
	rt.spawn(&e.wg, e.follow)
	return e
}

// election is the running election of one LeaderLease.
type election struct {
	rt         *runtime
	lease      types.NamespacedName
	store      *storepool.Store
	generation uint64
	key        string
	ttl        time.Duration
	follower   *leadership.Follower

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{} // closed when every goroutine ended (after stop)
	once   sync.Once

	// Touched only by Reconcile, which never runs twice at once for one lease.
	campaigns map[string]*campaign // by pod name
	holdFor   string               // the restart rule: the only pod campaigning until holdUntil
	holdUntil time.Time

	mu          sync.Mutex
	synced      bool  // the follower has read the key at least once
	followErr   error // the follower's last error, cleared by its next report
	campaignErr error // a campaign's last error, cleared when a campaign wins
}

// campaign is one candidate pod's campaign.
type campaign struct {
	candidate *leadership.Candidate
	cancel    context.CancelFunc
	ended     chan struct{} // closed when the campaign ended (cancelled or failed for good)
}

// stop cancels every campaign (each releases the key at once) and the follower, and returns a
// channel closed once they all ended.
func (e *election) stop() <-chan struct{} {
	e.once.Do(func() {
		e.cancel()
		go func() {
			e.wg.Wait()
			close(e.done)
		}()
	})
	return e.done
}

// notify enqueues the lease for a reconcile.
func (e *election) notify() {
	obj := &kvopv1.LeaderLease{}
	obj.Namespace, obj.Name = e.lease.Namespace, e.lease.Name
	select {
	case e.rt.events <- event.GenericEvent{Object: obj}:
	case <-e.ctx.Done():
	}
}

// follow feeds the follower's reports back to the controller.
func (e *election) follow() {
	leaders, errs := e.follower.FollowElection(e.ctx)
	for leaders != nil || errs != nil {
		select {
		case _, ok := <-leaders:
			if !ok {
				leaders = nil
				continue
			}
			e.mu.Lock()
			e.synced, e.followErr = true, nil
			e.mu.Unlock()
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			e.mu.Lock()
			e.followErr = err
			e.mu.Unlock()
		}
		e.notify()
	}
}

// observed returns what the follower knows (whether it has read the key, the leader, its term,
// its last error) and the campaigns' last error.
func (e *election) observed() (synced bool, leader string, term uint64, followErr, campaignErr error) {
	e.mu.Lock()
	synced, followErr, campaignErr = e.synced, e.followErr, e.campaignErr
	e.mu.Unlock()
	return synced, e.follower.Leader(), e.follower.Term(), followErr, campaignErr
}

func (e *election) setCampaignErr(err error) {
	e.mu.Lock()
	e.campaignErr = err
	e.mu.Unlock()
}

// syncCampaigns runs one campaign per desired pod and stops the others. It applies the restart
// rule and returns how long the hold still lasts (0 when there is none).
func (e *election) syncCampaigns(desired []string, now time.Time) time.Duration {
	want := make(map[string]bool, len(desired))
	for _, pod := range desired {
		want[pod] = true
	}
	for pod, c := range e.campaigns {
		if !want[pod] {
			c.cancel() // releases the key at once if it leads: a waiting candidate takes over
			delete(e.campaigns, pod)
		}
	}
	if e.holdFor != "" {
		c := e.campaigns[e.holdFor]
		if !want[e.holdFor] || !now.Before(e.holdUntil) || (c != nil && c.candidate.IsLeader()) {
			e.holdFor = "" // the hold is over for good
		}
	}
	for _, pod := range desired {
		if e.holdFor != "" && pod != e.holdFor {
			continue
		}
		if c := e.campaigns[pod]; c != nil {
			select {
			case <-c.ended: // failed for good (e.g. the store closed): campaign again
			default:
				continue
			}
		}
		e.campaign(pod)
	}
	if e.holdFor == "" {
		return 0
	}
	return e.holdUntil.Sub(now)
}

// campaign starts the campaign of one pod.
func (e *election) campaign(pod string) {
	ctx, cancel := context.WithCancel(e.ctx)
	c := &campaign{candidate: leadership.NewCandidate(e.store, e.key, pod, e.ttl), cancel: cancel, ended: make(chan struct{})}
	e.campaigns[pod] = c
	started := e.rt.spawn(&e.wg, func() {
		defer close(c.ended)
		elected, errs := c.candidate.RunForElection(ctx)
		for elected != nil || errs != nil {
			select {
			case won, ok := <-elected:
				if !ok {
					elected = nil
					continue
				}
				if won {
					e.setCampaignErr(nil)
					// The follower reports the new leader too, but the restart hold ends on
					// this candidate's own word: the follower may name the same pod while a
					// lock left by the previous kvop process still holds the key.
					e.notify()
				}
			case err, ok := <-errs:
				if !ok {
					errs = nil
					continue
				}
				// The campaign retries transient errors itself; status shows the last one
				// while nobody leads (e.g. the backend refuses kvop's writes but not reads).
				e.setCampaignErr(err)
			}
		}
	})
	if !started {
		cancel()
		close(c.ended)
	}
}
