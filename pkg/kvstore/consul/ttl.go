package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kvop/kvop/pkg/kvstore"
)

// ttlKey is the session behind a TTL key this store wrote. Each TTL key has a session of its
// own: one key's refreshes must not keep another key alive.
type ttlKey struct {
	session string
	ttl     time.Duration      // the TTL the caller asked for
	sessTTL time.Duration      // the TTL the session has (raised to the server's floor)
	written time.Time          // last write or refresh
	stop    context.CancelFunc // ends the keep-alive; nil without KeepAlive
}

// lockDelayRetries bounds how often a TTL write is retried while the key is in a lock-delay
// (after the session that held it ended; ours last 1 ms).
const lockDelayRetries = 20

// writeTTL writes key bound to a session, so that Consul deletes the key when the session
// expires: one transaction of [check,] delete, lock. The delete unbinds the key from any other
// session first (a lock fails on a key another session holds).
//
// A refresh (same TTL as the last write of this key by this store) renews the key's session
// rather than creating one; a session renewal is not a write, so KeepAlive refreshes neither
// move LastIndex nor wake watchers.
//
// The caller holds the key's stripe lock. A failed check is returned as a *txnFailure.
func (s *store) writeTTL(ctx context.Context, key string, value []byte, check *api.KVTxnOp, opts *kvstore.WriteOptions) (*api.KVPair, *txnFailure, error) {
	s.mu.Lock()
	old := s.ttlKeys[key]
	s.mu.Unlock()

	var (
		session string
		sessTTL time.Duration
	)
	if old != nil && old.ttl == opts.TTL {
		// Renew before writing: the key's expiry clock restarts with this write.
		err := s.renewSession(ctx, old.session)
		switch {
		case err == nil:
			session, sessTTL = old.session, old.sessTTL
		case !errors.Is(err, errSessionGone):
			return nil, nil, err
		}
	}
	created := ""
	var result *api.KVPair
	for attempt := 0; ; attempt++ {
		if session == "" {
			var err error
			session, sessTTL, err = s.createSession(ctx, "kvop ttl "+key, opts.TTL)
			if err != nil {
				return nil, nil, err
			}
			created = session
		}
		ops := api.KVTxnOps{}
		if check != nil {
			ops = append(ops, check)
		}
		ops = append(ops,
			&api.KVTxnOp{Verb: api.KVDelete, Key: key},
			&api.KVTxnOp{Verb: api.KVLock, Key: key, Value: value, Session: session})
		r, failed, err := s.txn(ctx, ops)
		if err == nil && failed == nil {
			result = r
			break
		}
		retry := false
		if err == nil && attempt < lockDelayRetries {
			switch {
			case sessionGone(failed) && created != session:
				// The reused session expired between renewal and write: start a new one.
				session, retry = "", true
			case strings.Contains(failed.what, "lock delay"):
				retry = sleepCtx(ctx, 5*time.Millisecond) == nil
			}
		}
		if retry {
			continue
		}
		if created != "" {
			_ = s.destroySession(ctx, created) // unused: it holds no key
		}
		if err == nil && (check == nil || failed.op != 0) {
			err = fmt.Errorf("binding the key to its session: %w", failed)
			failed = nil
		}
		return nil, failed, err
	}

	entry := &ttlKey{session: session, ttl: opts.TTL, sessTTL: sessTTL, written: time.Now()}
	if opts.KeepAlive {
		kctx, stop := context.WithCancel(s.ctx)
		entry.stop = stop
		if !s.spawn(func() { _ = s.renewLoop(kctx, session, sessTTL, 0) }) {
			stop()
		}
	}
	s.mu.Lock()
	s.ttlKeys[key] = entry
	sweep := time.Since(s.lastSweep) > time.Minute
	if sweep {
		s.lastSweep = time.Now()
	}
	s.mu.Unlock()
	if old != nil {
		if old.stop != nil {
			old.stop()
		}
		if old.session != session {
			_ = s.destroySession(ctx, old.session) // it no longer holds the key
		}
	}
	if sweep {
		s.sweepTTLKeys()
	}
	return result, nil, nil
}

// forgetTTLKey ends the keep-alive and the session of key after a Put without TTL or a
// Delete. The write has already unbound the key from the session, so destroying it is only
// tidying up; if that fails the session expires on its own. The caller holds the stripe lock.
func (s *store) forgetTTLKey(ctx context.Context, key string) {
	s.mu.Lock()
	e := s.ttlKeys[key]
	delete(s.ttlKeys, key)
	s.mu.Unlock()
	if e == nil {
		return
	}
	if e.stop != nil {
		e.stop()
	}
	_ = s.destroySession(ctx, e.session)
}

// ttlKeysBelow lists the TTL keys this store wrote below dir.
func (s *store) ttlKeysBelow(dir string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.ttlKeys {
		if kvstore.IsBelow(k, dir) {
			keys = append(keys, k)
		}
	}
	return keys
}

// sweepTTLKeys drops the bookkeeping of TTL keys without keep-alive whose sessions have
// certainly expired (Consul expires a session at most 2 × TTL after its last renewal), so that
// a store writing many short-lived keys does not grow without bound.
func (s *store) sweepTTLKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.ttlKeys {
		if e.stop == nil && time.Since(e.written) > 2*e.sessTTL+time.Minute {
			delete(s.ttlKeys, k)
		}
	}
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
