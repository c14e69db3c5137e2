package etcd

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvop/kvop/pkg/kvstore"
)

// A lock is its key: the holder creates it (only if absent, in a transaction) with the
// LockOptions.Value, on a lease of the lock's TTL that it keeps alive. Others wait on a watch
// of the key for its deletion and try again, so an Unlock (a revoke of the holder's lease,
// which deletes the key) wakes them at once, and a dead holder's key goes when its lease
// expires. No queue: waiters race for the key, and exactly one transaction wins.
//
// The holder watches its own key and loses the lock when the key changes or goes behind its
// back, and when its lease is lost (the keep-alive stream ends once the server stayed silent
// for a whole TTL, as the lease may have expired meanwhile).

// locker is a kvstore.Locker on one key.
type locker struct {
	s     *Store
	key   string
	value string
	ttl   time.Duration

	// sem admits one Lock or Unlock at a time (a channel, so a waiting Lock honours its ctx).
	sem  chan struct{}
	held *holding // nil when not locked
}

// holding is one tenure of a lock.
type holding struct {
	ss   *session
	rev  int64         // ModRevision of the lock key we wrote
	lost chan struct{} // closed on loss, Unlock and Close
	once sync.Once
}

func (h *holding) drop() { h.once.Do(func() { close(h.lost) }) }

func (h *holding) isLost() bool {
	select {
	case <-h.lost:
		return true
	default:
		return false
	}
}

// NewLock returns a Locker for key; it takes nothing yet.
func (s *Store) NewLock(_ context.Context, key string, opts *kvstore.LockOptions) (kvstore.Locker, error) {
	k, err := s.normalize("lock", key)
	if err != nil {
		return nil, err
	}
	l := &locker{s: s, key: k, ttl: kvstore.DefaultLockTTL, sem: make(chan struct{}, 1)}
	if opts != nil {
		l.value = string(opts.Value)
		if opts.TTL > 0 {
			l.ttl = opts.TTL
		}
	}
	return l, nil
}

// enter waits for the Locker, or for ctx. A free Locker is taken even with a done ctx, so that
// an Unlock given a cancelled context still releases.
func (l *locker) enter(ctx context.Context) error {
	select {
	case l.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case l.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *locker) leave() { <-l.sem }

// Lock takes the lock, waiting while another holder has it. ctx bounds only the wait.
func (l *locker) Lock(ctx context.Context) (<-chan struct{}, error) {
	if err := l.enter(ctx); err != nil {
		return nil, err
	}
	defer l.leave()
	s := l.s
	if l.held != nil {
		if !l.held.isLost() {
			return nil, kvstore.Wrap(kvstore.Etcd, "lock", l.key, errors.New("this Locker already holds the lock"))
		}
		_ = l.held.ss.release(ctx) // tidy up after the loss
		l.held = nil
	}
	if s.closed.Load() {
		return nil, kvstore.Wrap(kvstore.Etcd, "lock", l.key, kvstore.ErrClosed)
	}
	wctx, stop := s.untilClosed(ctx)
	defer stop()

	var ss *session
	fail := func(err error) (<-chan struct{}, error) {
		if ss != nil {
			_ = ss.release(ctx)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, s.fail(ctx, "lock", l.key, err)
	}
	for {
		if ss == nil || ss.lost() {
			if ss != nil {
				_ = ss.release(ctx)
			}
			var err error
			if ss, err = s.newSession(wctx, l.ttl); err != nil {
				ss = nil
				return fail(err)
			}
		}
		tctx, cancel := s.opCtx(wctx)
		resp, err := s.cli.Txn(tctx).
			If(clientv3.Compare(clientv3.CreateRevision(l.key), "=", 0)).
			Then(clientv3.OpPut(l.key, l.value, clientv3.WithLease(ss.id))).
			Commit()
		cancel()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The lease expired before we used it (the server was away): take a new one.
			_ = ss.release(ctx)
			ss = nil
			continue
		}
		if err != nil {
			return fail(err)
		}
		if resp.Succeeded {
			h := &holding{ss: ss, rev: resp.Header.Revision, lost: make(chan struct{})}
			if !s.goroutine(func() { l.monitor(h) }) {
				return fail(kvstore.ErrClosed)
			}
			l.held = h
			return h.lost, nil
		}
		// Held by another: wait for the key's deletion after the revision we saw it at.
		s.follow(wctx, l.key, false, resp.Header.Revision,
			func(evs []*clientv3.Event) bool {
				for _, ev := range evs {
					if ev.Type == clientv3.EventTypeDelete {
						return false
					}
				}
				return true
			},
			func(context.Context) (int64, bool, error) { return 0, false, nil }) // try the txn again
		if wctx.Err() != nil {
			return fail(kvstore.ErrClosed) // ctx.Err() when it was the caller's ctx
		}
	}
}

// monitor closes h.lost when the lock is lost: its lease ends, or its key changes or goes.
func (l *locker) monitor(h *holding) {
	defer h.drop()
	s := l.s
	changed := false
	s.follow(h.ss.ctx, l.key, false, h.rev,
		func([]*clientv3.Event) bool { changed = true; return false }, // any event is someone else's
		func(ctx context.Context) (int64, bool, error) {
			p, rev, err := s.get(ctx, l.key)
			if err != nil {
				return 0, false, err
			}
			if p == nil || p.LastIndex != uint64(h.rev) {
				changed = true
				return 0, false, nil
			}
			return rev, true, nil
		})
	if changed {
		h.ss.cancel() // the key is no longer ours: stop refreshing; Unlock revokes
	}
}

// Unlock releases the lock: it revokes the lease, which deletes the key. After a loss it
// returns nil; on a Locker that holds nothing, ErrNotLocked.
func (l *locker) Unlock(ctx context.Context) error {
	if err := l.enter(ctx); err != nil {
		return err
	}
	defer l.leave()
	h := l.held
	if h == nil {
		return kvstore.Wrap(kvstore.Etcd, "unlock", l.key, kvstore.ErrNotLocked)
	}
	l.held = nil
	wasLost := h.isLost()
	h.drop()
	err := h.ss.release(ctx)
	if wasLost || err == nil {
		return nil
	}
	return l.s.fail(ctx, "unlock", l.key, err)
}
