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

// ttlKey is the session behind a TTL key this store wrote. A TTL key without KeepAlive has a
// session of its own: one key's refreshes must not keep another key alive. KeepAlive keys of
// one TTL share a session (keptSession): they are all kept alive anyway.
type ttlKey struct {
	session string
	ttl     time.Duration // the TTL the caller asked for
	sessTTL time.Duration // the TTL the session has (raised to the server's floor)
	written time.Time     // last write or refresh
	kept    *keptSession  // the shared session of a KeepAlive key; nil without KeepAlive
}

// keptSession is the session the KeepAlive keys of one TTL share, renewed by one goroutine, so
// that a thousand registrations cost one session and one renewal every TTL/2 rather than a
// thousand. It is destroyed when its last key goes. Should it expire (no renewal got through
// for Consul's 2 × TTL), Consul deletes its keys and the next KeepAlive write starts a new one.
type keptSession struct {
	id      string
	ttl     time.Duration // the TTL asked for: the store's map key
	sessTTL time.Duration
	refs    int // keys bound or being bound to it; guarded by store.mu
	stop    context.CancelFunc
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
		created string       // a session of its own, made for this write
		kept    *keptSession // or the shared one, with a reference taken for this key
	)
	if !opts.KeepAlive && old != nil && old.kept == nil && old.ttl == opts.TTL {
		// Renew before writing: the key's expiry clock restarts with this write.
		err := s.renewSession(ctx, old.session)
		switch {
		case err == nil:
			session, sessTTL = old.session, old.sessTTL
		case !errors.Is(err, errSessionGone):
			return nil, nil, err
		}
	}
	var result *api.KVPair
	for attempt := 0; ; attempt++ {
		if session == "" {
			var err error
			if opts.KeepAlive {
				if kept, err = s.keptSessionFor(ctx, opts.TTL); err == nil {
					session, sessTTL = kept.id, kept.sessTTL
				}
			} else if session, sessTTL, err = s.createSession(ctx, "kvop ttl "+key, opts.TTL); err == nil {
				created = session
			}
			if err != nil {
				return nil, nil, err
			}
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
				// The reused or shared session expired meanwhile: start a new one.
				if kept != nil {
					s.retireKept(kept)
					s.unrefKept(ctx, kept)
					kept = nil
				}
				session, retry = "", true
			case strings.Contains(failed.what, "lock delay"):
				retry = sleepCtx(ctx, 5*time.Millisecond) == nil
			}
		}
		if retry {
			continue
		}
		// The session holds no key of this write.
		if created != "" {
			_ = s.destroySession(ctx, created)
		}
		if kept != nil {
			s.unrefKept(ctx, kept)
		}
		if err == nil && (check == nil || failed.op != 0) {
			err = fmt.Errorf("binding the key to its session: %w", failed)
			failed = nil
		}
		return nil, failed, err
	}

	entry := &ttlKey{session: session, ttl: opts.TTL, sessTTL: sessTTL, written: time.Now(), kept: kept}
	s.mu.Lock()
	s.ttlKeys[key] = entry
	sweep := time.Since(s.lastSweep) > time.Minute
	if sweep {
		s.lastSweep = time.Now()
	}
	s.mu.Unlock()
	if old != nil {
		s.dropSession(ctx, old, session)
	}
	if sweep {
		s.sweepTTLKeys()
	}
	return result, nil, nil
}

// dropSession lets go of the session behind a key's earlier write e, which the key has left
// (unless it is still the key's session, current): a key's own session is destroyed, a shared
// one loses a reference. If destroying fails, the session expires on its own.
func (s *store) dropSession(ctx context.Context, e *ttlKey, current string) {
	switch {
	case e.kept != nil:
		s.unrefKept(ctx, e.kept)
	case e.session != current:
		_ = s.destroySession(ctx, e.session)
	}
}

// keptSessionFor returns the shared session of the KeepAlive keys of ttl with a reference
// taken, creating it and its renewal when there is none. keptMu makes concurrent first writes
// share one session.
func (s *store) keptSessionFor(ctx context.Context, ttl time.Duration) (*keptSession, error) {
	s.keptMu.Lock()
	defer s.keptMu.Unlock()
	s.mu.Lock()
	if ks := s.kept[ttl]; ks != nil {
		ks.refs++
		s.mu.Unlock()
		return ks, nil
	}
	s.mu.Unlock()
	id, sessTTL, err := s.createSession(ctx, "kvop keepalive "+ttl.String(), ttl)
	if err != nil {
		return nil, err
	}
	kctx, stop := context.WithCancel(s.ctx)
	ks := &keptSession{id: id, ttl: ttl, sessTTL: sessTTL, refs: 1, stop: stop}
	renew := func() {
		if err := s.renewLoop(kctx, id, sessTTL, 0); errors.Is(err, errSessionGone) {
			s.retireKept(ks)
		}
	}
	if !s.spawn(renew) {
		stop()
		_ = s.destroySession(ctx, id)
		return nil, kvstore.ErrClosed
	}
	s.mu.Lock()
	s.kept[ttl] = ks
	s.mu.Unlock()
	return ks, nil
}

// retireKept stops handing out a shared session that is gone; the keys that were bound to it
// went with it, and their next KeepAlive write takes a new one.
func (s *store) retireKept(ks *keptSession) {
	s.mu.Lock()
	if s.kept[ks.ttl] == ks {
		delete(s.kept, ks.ttl)
	}
	s.mu.Unlock()
}

// unrefKept drops one key's reference to a shared session. The last one ends its renewal and
// destroys it: no key is bound to it any more, so that deletes nothing.
func (s *store) unrefKept(ctx context.Context, ks *keptSession) {
	s.mu.Lock()
	ks.refs--
	last := ks.refs == 0
	if last && s.kept[ks.ttl] == ks {
		delete(s.kept, ks.ttl)
	}
	s.mu.Unlock()
	if last {
		ks.stop()
		_ = s.destroySession(ctx, ks.id)
	}
}

// forgetTTLKey lets go of the session of key after a Put without TTL or a Delete. The write
// has already unbound the key from the session, so this is only tidying up. The caller holds
// the stripe lock.
func (s *store) forgetTTLKey(ctx context.Context, key string) {
	s.mu.Lock()
	e := s.ttlKeys[key]
	delete(s.ttlKeys, key)
	s.mu.Unlock()
	if e != nil {
		s.dropSession(ctx, e, "")
	}
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
		if e.kept == nil && time.Since(e.written) > 2*e.sessTTL+time.Minute {
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
