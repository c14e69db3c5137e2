package leadership

import (
	"context"
	"sync"
	"time"

	"github.com/kvop/kvop/internal/retry"
	"github.com/kvop/kvop/pkg/kvstore"
)

// Follower watches who leads one key.
type Follower struct {
	store kvstore.Store
	key   string

	mu     sync.Mutex
	leader string
	term   uint64
}

// NewFollower follows the election of key.
func NewFollower(store kvstore.Store, key string) *Follower {
	return &Follower{store: store, key: key}
}

// Leader returns the current leader's node name, "" while there is none.
func (f *Follower) Leader() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

// Term is the term of the leader Leader() names; 0 while there is none.
func (f *Follower) Term() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.term
}

// set records the leader and reports whether the leadership changed.
func (f *Follower) set(leader string, term uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	changed := leader != f.leader || term != f.term
	f.leader, f.term = leader, term
	return changed
}

// FollowElection sends the leader's node name each time it changes, "" while there is none.
// A new tenure of the same node (a new term) is sent too. The first value is the current leader.
// It survives store outages: it watches again with backoff and then resends the current leader.
// errs gets store errors as they happen and the error that ended following (the store was
// closed); both channels close when it ends (when ctx is done, at the latest).
func (f *Follower) FollowElection(ctx context.Context) (leader <-chan string, errs <-chan error) {
	leaderCh := make(chan string)
	errCh := make(chan error, 1)
	go f.follow(ctx, leaderCh, errCh)
	return leaderCh, errCh
}

func (f *Follower) follow(ctx context.Context, leaders chan<- string, errs chan error) {
	defer close(errs)
	defer close(leaders)
	backoff := retry.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for ctx.Err() == nil {
		events, err := f.store.Watch(ctx, f.key)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if permanent(err) {
				select {
				case <-errs:
				default:
				}
				errs <- err
				return
			}
			select {
			case errs <- err:
			default:
			}
			retry.Sleep(ctx, backoff.Next())
			continue
		}
		resend := true // the first state of every watch is sent, even if unchanged
		for pair := range events {
			backoff.Reset()
			node, term := "", uint64(0)
			if pair != nil {
				node, term = string(pair.Value), pair.LastIndex
			}
			if f.set(node, term) || resend {
				if !send(ctx, leaders, node) {
					return
				}
			}
			resend = false
		}
		// The watch ended while ctx lives: the store closed it. Watching again tells whether the
		// store is gone for good (ErrClosed) or was only interrupted.
		retry.Sleep(ctx, backoff.Next())
	}
}
