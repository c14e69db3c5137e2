package leadership

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kvop/kvop/internal/retry"
	"github.com/kvop/kvop/pkg/kvstore"
)

// releaseTimeout bounds the Unlock that gives leadership back when a campaign ends or resigns.
const releaseTimeout = 5 * time.Second

// DefaultResignPause is how long a candidate that resigned waits for another candidate to take
// over before it campaigns again (it campaigns at once when another one has taken the key).
const DefaultResignPause = time.Second

// errNotOurs: the lock was granted but the key names another holder, so it was lost at once.
var errNotOurs = errors.New("leader key holds another node right after the lock was granted")

// Candidate campaigns for leadership of one key as one node.
type Candidate struct {
	store kvstore.Store
	key   string
	node  string
	ttl   time.Duration

	// ResignPause overrides DefaultResignPause; set it before RunForElection.
	ResignPause time.Duration

	resign chan struct{} // a pending Resign; buffered 1

	mu     sync.Mutex
	leader bool
	term   uint64
}

// NewCandidate campaigns for `key` as `node`; a dead leader keeps the key at most ttl (+ the
// backend's bound, see kvstore).
func NewCandidate(store kvstore.Store, key, node string, ttl time.Duration) *Candidate {
	return &Candidate{store: store, key: key, node: node, ttl: ttl, resign: make(chan struct{}, 1)}
}

// Node returns the candidate's node name.
func (c *Candidate) Node() string { return c.node }

// IsLeader reports whether this candidate leads now.
func (c *Candidate) IsLeader() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// Term is the fencing term of this candidate's current leadership (0 when not leader). Terms
// strictly increase every time leadership changes hands, on every backend, and are stored with
// the leader's identity so that followers and outside readers see them.
func (c *Candidate) Term() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.term
}

// Resign gives up leadership now and campaigns again; a waiting candidate wins within 1s.
// It does nothing when this candidate does not lead.
func (c *Candidate) Resign() {
	if !c.IsLeader() {
		return
	}
	select {
	case c.resign <- struct{}{}:
	default: // a resign is already pending
	}
}

func (c *Candidate) setLeader(leader bool, term uint64) {
	c.mu.Lock()
	c.leader, c.term = leader, term
	c.mu.Unlock()
}

// RunForElection campaigns until ctx is done. elected gets true each time this candidate becomes
// leader and false each time it stops being leader. errs gets store errors as they happen (the
// campaign retries them with backoff; a slow reader misses some) and the error that ended the
// campaign, if one did (the store was closed, the key is invalid). Both channels close when the
// campaign ends, and leadership is released at once (not left to expire) when ctx is cancelled.
// Read elected: a leader that steps down (Resign, a cancelled ctx) first tells its reader "false"
// and only then releases the key, so that the reader stops acting as leader before any other
// candidate can start. Run one campaign per Candidate at a time.
func (c *Candidate) RunForElection(ctx context.Context) (elected <-chan bool, errs <-chan error) {
	electedCh := make(chan bool)
	errCh := make(chan error, 1)
	go c.campaign(ctx, electedCh, errCh)
	return electedCh, errCh
}

func (c *Candidate) campaign(ctx context.Context, elected chan<- bool, errs chan error) {
	defer close(errs)
	defer close(elected)
	backoff := retry.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}

	// failed reports err; it returns false when the campaign must end.
	failed := func(err error) bool {
		if ctx.Err() != nil {
			return false
		}
		if permanent(err) {
			select { // make room: the final error must not be lost behind a transient one
			case <-errs:
			default:
			}
			errs <- err
			return false
		}
		select {
		case errs <- err:
		default:
		}
		return retry.Sleep(ctx, backoff.Next())
	}

	lock, err := c.store.NewLock(ctx, c.key, &kvstore.LockOptions{Value: []byte(c.node), TTL: c.ttl})
	for err != nil {
		if !failed(err) {
			return
		}
		lock, err = c.store.NewLock(ctx, c.key, &kvstore.LockOptions{Value: []byte(c.node), TTL: c.ttl})
	}

	for ctx.Err() == nil {
		lost, err := lock.Lock(ctx)
		if err != nil {
			if !failed(err) {
				return
			}
			continue
		}
		term, err := c.confirm(ctx)
		if err != nil {
			c.release(lock)
			if !failed(err) {
				return
			}
			continue
		}
		backoff.Reset()
		select { // a Resign from an earlier tenure must not end this one
		case <-c.resign:
		default:
		}
		c.setLeader(true, term)
		if !send(ctx, elected, true) {
			c.stepDown(ctx, lock, elected)
			return
		}
		select {
		case <-lost:
			// The lock is gone already: tell the reader first, so that it stops acting as
			// leader at once, and only then tidy up (Unlock may wait on an unreachable store).
			c.setLeader(false, 0)
			told := send(ctx, elected, false)
			c.release(lock) // nil after a loss; frees the Locker's resources
			if !told || !retry.Sleep(ctx, backoff.Next()) {
				return
			}
		case <-c.resign:
			if !c.stepDown(ctx, lock, elected) {
				return
			}
			c.yield(ctx)
		case <-ctx.Done():
			c.stepDown(ctx, lock, elected)
			return
		}
	}
}

// confirm reads the leader key after the lock was granted: its value must be this node, and its
// LastIndex is the term of this leadership.
func (c *Candidate) confirm(ctx context.Context) (uint64, error) {
	pair, err := c.store.Get(ctx, c.key)
	if err != nil {
		return 0, err
	}
	if string(pair.Value) != c.node {
		return 0, fmt.Errorf("%w (%q)", errNotOurs, pair.Value)
	}
	return pair.LastIndex, nil
}

// stepDown gives leadership up in an order that never lets two leaders overlap: this candidate
// stops claiming it (IsLeader), its reader is told (elected <- false) and only then is the lock
// released for a successor. When ctx is done the reader may be gone, so the "false" is offered
// but not waited for. It reports whether the campaign goes on.
func (c *Candidate) stepDown(ctx context.Context, lock kvstore.Locker, elected chan<- bool) (goOn bool) {
	c.setLeader(false, 0)
	defer c.release(lock)
	select {
	case elected <- false:
		return true
	case <-ctx.Done():
		select {
		case elected <- false:
		default:
		}
		return false
	}
}

func (c *Candidate) release(lock kvstore.Locker) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	_ = lock.Unlock(ctx) // the key expires within its TTL bound if this fails
}

// yield waits after a Resign until another candidate holds the key, or ResignPause passes, so
// that a waiting candidate wins instead of this one winning again at once.
func (c *Candidate) yield(ctx context.Context) {
	pause := c.ResignPause
	if pause <= 0 {
		pause = DefaultResignPause
	}
	wctx, cancel := context.WithTimeout(ctx, pause)
	defer cancel()
	events, err := c.store.Watch(wctx, c.key)
	if err != nil {
		retry.Sleep(wctx, pause)
		return
	}
	for pair := range events {
		if pair != nil && string(pair.Value) != c.node {
			return
		}
	}
}

// permanent reports errors that retrying cannot cure.
func permanent(err error) bool {
	return errors.Is(err, kvstore.ErrClosed) || errors.Is(err, kvstore.ErrInvalidKey) ||
		errors.Is(err, kvstore.ErrBackendNotSupported)
}

// send delivers v unless ctx is done first.
func send[T any](ctx context.Context, ch chan<- T, v T) bool {
	select {
	case ch <- v:
		return true
	case <-ctx.Done():
		return false
	}
}
