package consul

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kvop/kvop/pkg/kvstore"
)

// locker is a Consul lock: the lock key, acquired with a session of its own (behavior
// "delete", lock-delay 1 ms) and holding LockOptions.Value.
type locker struct {
	s     *store
	key   string
	value []byte
	ttl   time.Duration

	lockMu sync.Mutex // one Lock at a time per Locker
	mu     sync.Mutex // guards h
	h      *holding   // the current or last hold; nil before the first Lock and after Unlock
}

// holding is one period of holding the lock. Two goroutines watch over it: one renews the
// session, one follows the key. Either ends the hold when the lock is lost.
type holding struct {
	key     string
	session string
	lost    chan struct{}
	cancel  context.CancelFunc // stops both goroutines
	wg      sync.WaitGroup

	mu    sync.Mutex
	ended bool // lost, unlocked or closed; lost is closed
}

// end closes the lost channel once; it reports whether this call did it.
func (h *holding) end() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		return false
	}
	h.ended = true
	close(h.lost)
	return true
}

func (h *holding) isEnded() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ended
}

func (s *store) NewLock(ctx context.Context, key string, opts *kvstore.LockOptions) (kvstore.Locker, error) {
	k, err := kvstore.NormalizeKey(key)
	if err != nil {
		return nil, wrap("lock", key, err)
	}
	if s.isClosed() {
		return nil, wrap("lock", k, kvstore.ErrClosed)
	}
	l := &locker{s: s, key: k, ttl: kvstore.DefaultLockTTL, value: []byte{}}
	if opts != nil {
		if opts.TTL > 0 {
			l.ttl = opts.TTL
		}
		if opts.Value != nil {
			l.value = append([]byte{}, opts.Value...)
		}
	}
	return l, nil
}

// Lock takes the lock: it tries to acquire the key with its session and, while another
// session holds it, waits with blocking queries on the key until it is released or deleted,
// so that an Unlock elsewhere wakes it at once. Locking a Locker that holds the lock returns
// its current lost channel.
func (l *locker) Lock(ctx context.Context) (<-chan struct{}, error) {
	l.lockMu.Lock()
	defer l.lockMu.Unlock()
	l.mu.Lock()
	if h := l.h; h != nil && !h.isEnded() {
		l.mu.Unlock()
		return h.lost, nil
	}
	l.mu.Unlock()

	s := l.s
	wctx, cancel := s.watchContext(ctx)
	defer cancel()
	session, sessTTL, index, err := l.acquire(wctx)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case s.ctx.Err() != nil:
			return nil, wrap("lock", l.key, kvstore.ErrClosed)
		}
		return nil, wrap("lock", l.key, err)
	}

	hctx, hcancel := context.WithCancel(s.ctx)
	h := &holding{key: l.key, session: session, lost: make(chan struct{}), cancel: hcancel}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		hcancel()
		_ = s.destroySession(context.Background(), session)
		return nil, wrap("lock", l.key, kvstore.ErrClosed)
	}
	s.holdings[h] = struct{}{}
	s.mu.Unlock()
	lose := func() {
		if h.end() {
			// Whatever is left of the hold must go: if the key is still bound to the session
			// (renewals failed but the server is back), destroying it deletes the key.
			s.forgetHolding(h)
			hcancel()
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ConnectionTimeout)
			_ = s.destroySession(ctx, session)
			cancel()
		}
	}
	h.wg.Add(2)
	for _, f := range []func(){
		func() {
			if err := s.renewLoop(hctx, session, sessTTL, sessTTL); err != nil {
				lose()
			}
		},
		func() {
			if l.follow(hctx, session, index) {
				lose()
			}
		},
	} {
		if !s.spawn(func() { defer h.wg.Done(); f() }) {
			h.wg.Done()
		}
	}
	l.mu.Lock()
	l.h = h
	l.mu.Unlock()
	return h.lost, nil
}

// acquire loops until the key is ours. The session is created just before the first attempt
// and renewed before later ones when half its TTL has passed (a waiter may wait for longer
// than the TTL); if the wait ends without the lock, the session is destroyed.
func (l *locker) acquire(ctx context.Context) (session string, sessTTL time.Duration, index uint64, err error) {
	s := l.s
	var renewed time.Time
	defer func() {
		if err != nil && session != "" {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ConnectionTimeout)
			_ = s.destroySession(dctx, session)
			cancel()
		}
	}()
	delayBackoff := 2 * lockDelay
	for {
		if session != "" && time.Since(renewed) > sessTTL/2 {
			if err := s.renewSession(ctx, session); err == nil {
				renewed = time.Now()
			} else if errors.Is(err, errSessionGone) {
				session = ""
			} else {
				return session, 0, 0, err
			}
		}
		if session == "" {
			session, sessTTL, err = s.createSession(ctx, "kvop lock "+l.key, l.ttl)
			if err != nil {
				return "", 0, 0, err
			}
			renewed = time.Now()
		}
		pair, failed, err := s.txn(ctx, api.KVTxnOps{
			{Verb: api.KVLock, Key: l.key, Value: l.value, Session: session},
		})
		if err != nil {
			return session, 0, 0, err
		}
		if failed == nil {
			return session, sessTTL, pair.ModifyIndex, nil
		}
		if sessionGone(failed) {
			session = ""
			continue
		}
		if strings.Contains(failed.what, "lock delay") {
			// The last holder's session just ended; its lock-delay (1 ms for kvop's, up
			// to 15 s for other clients') keeps the key for a moment. The server does not
			// say how long is left: start at twice kvop's lock-delay and double, so that a
			// kvop holder's delay costs ~2 ms (not a 50 ms backoff) and another client's
			// long one costs few requests.
			if err := sleepCtx(ctx, delayBackoff); err != nil {
				return session, 0, 0, err
			}
			delayBackoff = min(2*delayBackoff, maxBackoff)
			continue
		}
		delayBackoff = 2 * lockDelay
		if err := l.waitFree(ctx); err != nil {
			return session, 0, 0, err
		}
	}
}

// waitFree blocks until the lock key is absent or held by no session.
func (l *locker) waitFree(ctx context.Context) error {
	s := l.s
	var index uint64
	backoff := minBackoff
	for {
		pair, next, err := s.get(ctx, l.key, index)
		if err != nil {
			if ctx.Err() != nil || s.ctx.Err() != nil {
				return err
			}
			if sleepCtx(ctx, backoff) != nil {
				return ctx.Err()
			}
			backoff = min(2*backoff, maxBackoff)
			index = 0
			continue
		}
		if pair == nil || pair.Session == "" {
			return nil
		}
		if next < index {
			next = 0
		}
		index = max(next, 1)
	}
}

// follow watches the held key; it returns true when the key is gone or bound to another
// session (deleted or overwritten behind the holder's back), false when ctx ends.
func (l *locker) follow(ctx context.Context, session string, index uint64) bool {
	s := l.s
	backoff := minBackoff
	for {
		pair, next, err := s.get(ctx, l.key, index)
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			// Renewals decide whether a server outage costs the lock.
			if sleepCtx(ctx, backoff) != nil {
				return false
			}
			backoff = min(2*backoff, maxBackoff)
			index = 0
			continue
		}
		if pair == nil || pair.Session != session {
			if l.confirmLost(ctx, session) {
				return true
			}
			// The server that answered is behind its log: ask again after a pause.
			if sleepCtx(ctx, backoff) != nil {
				return false
			}
			backoff = min(2*backoff, maxBackoff)
			index = 0
			continue
		}
		backoff = minBackoff
		if next < index {
			next = 0
		}
		index = max(next, 1)
	}
}

// confirmLost re-reads the key with a consistent read before follow gives the lock up: a
// server that has just restarted and won an election may answer a default read from its
// state store before it has replayed the raft log written since its last snapshot, where the
// key or its binding to the session is missing. A consistent read is refused until that
// replay is done. It returns false when the key is still bound to session, or when the read
// failed (follow then reads again, and renewals decide whether an outage costs the lock).
func (l *locker) confirmLost(ctx context.Context, session string) bool {
	var pair *api.KVPair
	err := l.s.call(ctx, false, l.s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
		var err error
		pair, _, err = c.KV().Get(l.key, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
		return err
	})
	return err == nil && (pair == nil || pair.Session != session)
}

// Unlock releases the lock: it deletes the key if the session still holds it, which wakes
// waiters through their blocking queries, then destroys the session (see release).
func (l *locker) Unlock(ctx context.Context) error {
	l.mu.Lock()
	h := l.h
	l.h = nil
	l.mu.Unlock()
	if h == nil {
		return wrap("unlock", l.key, kvstore.ErrNotLocked)
	}
	h.cancel()
	h.wg.Wait()
	if !h.end() {
		return nil // lost (or released by Close) before: nothing left to release
	}
	l.s.forgetHolding(h)
	if err := l.s.release(ctx, h.key, h.session); err != nil {
		return wrap("unlock", l.key, err)
	}
	return nil
}

// release gives a held lock back: one transaction deletes the key if session still holds it
// ([check-session, delete]), then the session is destroyed. Destroying a session that still
// holds the key would delete it as well, but Consul then applies the session's lock-delay to
// the key, and a waiter that woke on the delete would be refused for that moment and back off
// (this made a handover cost ~55 ms); a session that holds nothing any more ends with no
// lock-delay. If the transaction fails, destroying the session still releases the key (with
// the lock-delay). The lock is released once either step has deleted the key, so a session
// that could not be destroyed after a successful transaction only expires by its TTL and is
// not an error. It works after Close too (Close uses it for every held lock).
func (s *store) release(ctx context.Context, key, session string) error {
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: key, Session: session}},
		{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: key}},
	}
	var released bool
	txnErr := s.callRaw(ctx, true, s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
		var err error
		released, _, _, err = c.Txn().Txn(ops, readOpts(ctx))
		return err
	})
	if err := s.destroySession(ctx, session); err != nil && (txnErr != nil || !released) {
		return err
	}
	return nil
}

func (s *store) forgetHolding(h *holding) {
	s.mu.Lock()
	delete(s.holdings, h)
	s.mu.Unlock()
}
