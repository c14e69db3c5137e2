package etcd

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvop/kvop/internal/retry"
	"github.com/kvop/kvop/pkg/kvstore"
)

// TTL keys live on leases: a Put with a TTL grants a lease of its own for the key and attaches
// the key to it. A lease costs the server little and one per write keeps the bookkeeping
// trivially right (no lease is ever shared by two keys). Refreshes of a KeepAlive key renew the
// lease, which neither changes the key's ModRevision nor sends a watch event.
//
// Only leases under keep-alive need tracking (kept): when a later Put or Delete takes the key
// off such a lease, its refresh must stop. Which lease the key was on is read from the write's
// own PrevKv, so concurrent writes of one key cannot confuse the bookkeeping. An abandoned
// lease is not revoked: it carries no key any more and expires by itself within its TTL, and a
// revoke would add a round trip to every write.

// leaseSeconds is the lease TTL for a key TTL. etcd leases have whole seconds; rounding to the
// nearest second keeps the key present while it is refreshed more often than ttl − 0.5s and
// gone within ttl + 0.5s (plus the server's expiry check, every 500ms): inside TTLBound's
// ttl + 1s. The server raises any TTL below its minimum (1.5 × election timeout, 2s with the
// default 1s election timeout).
func leaseSeconds(ttl time.Duration) int64 {
	return max(int64((ttl+time.Second/2)/time.Second), 1)
}

// grant creates a lease for a TTL write. With keepAlive, the lease is registered (and its
// keep-alive started) before the key is written, so that any concurrent write of this store
// asks for the PrevKv that tells whether the key left the lease.
func (s *Store) grant(ctx context.Context, ttl time.Duration, keepAlive bool) (clientv3.LeaseID, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Grant(ctx, leaseSeconds(ttl))
	if err != nil {
		return 0, err
	}
	if keepAlive {
		kctx, stop := context.WithCancel(s.ctx)
		s.mu.Lock()
		s.kept[resp.ID] = stop
		s.mu.Unlock()
		if !s.goroutine(func() { s.refresh(kctx, resp.ID) }) {
			s.forget(resp.ID)
		}
	}
	return resp.ID, nil
}

// writeOpts returns the options of a write that may take a key off a kept lease: PrevKv, when
// this store keeps any lease alive.
func (s *Store) writeOpts(opts ...clientv3.OpOption) []clientv3.OpOption {
	s.mu.Lock()
	n := len(s.kept)
	s.mu.Unlock()
	if n > 0 {
		opts = append(opts, clientv3.WithPrevKV())
	}
	return opts
}

// released stops the keep-alive of the leases that the given previous pairs were on (the
// keys left them); leases of other clients are ignored.
func (s *Store) released(prev ...*mvccpb.KeyValue) {
	for _, kv := range prev {
		if kv != nil && kv.Lease != 0 {
			s.forget(clientv3.LeaseID(kv.Lease))
		}
	}
}

// forget stops refreshing a lease.
func (s *Store) forget(id clientv3.LeaseID) {
	s.mu.Lock()
	stop, ok := s.kept[id]
	delete(s.kept, id)
	s.mu.Unlock()
	if ok {
		stop()
	}
}

// refresh keeps a lease alive until ctx ends. The client's keep-alive stream gives up when the
// server stays silent for a whole TTL; the lease may still exist (a server restart renews
// every lease), so refresh starts it again — unless the server says the lease is gone, and
// with it the key.
func (s *Store) refresh(ctx context.Context, id clientv3.LeaseID) {
	defer s.forget(id)
	for {
		if ch, err := s.cli.KeepAlive(ctx, id); err == nil {
			for range ch {
			}
		}
		if !retry.Sleep(ctx, retryDelay) {
			return
		}
		tctx, cancel := s.opCtx(ctx)
		resp, err := s.cli.TimeToLive(tctx, id)
		cancel()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && resp.TTL <= 0) {
			return
		}
	}
}

// retryDelay is the pause before a broken watch or keep-alive is tried again.
const retryDelay = 250 * time.Millisecond

// session is the lease of a held or wanted lock, kept alive while the lock needs it.
type session struct {
	s  *Store
	id clientv3.LeaseID
	// ctx ends when the lease is lost (the keep-alive stream ended: the lease expired, or the
	// server was silent for its whole TTL) or released.
	ctx    context.Context
	cancel context.CancelFunc
}

// newSession grants a lease of ttl and keeps it alive until it is lost or released.
func (s *Store) newSession(ctx context.Context, ttl time.Duration) (*session, error) {
	gctx, cancel := s.opCtx(ctx)
	resp, err := s.cli.Grant(gctx, leaseSeconds(ttl))
	cancel()
	if err != nil {
		return nil, err
	}
	kctx, kcancel := context.WithCancel(s.ctx)
	ss := &session{s: s, id: resp.ID, ctx: kctx, cancel: kcancel}
	ch, err := s.cli.KeepAlive(kctx, resp.ID)
	if err != nil {
		_ = ss.release(ctx)
		return nil, err
	}
	s.mu.Lock()
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	if !s.goroutine(func() {
		for range ch {
		}
		kcancel()
	}) {
		_ = ss.release(ctx)
		return nil, kvstore.ErrClosed
	}
	return ss, nil
}

// lost reports whether the lease is gone or released.
func (ss *session) lost() bool { return ss.ctx.Err() != nil }

// release stops the keep-alive and revokes the lease, which deletes a lock key still on it.
// A lease that already expired is not an error.
func (ss *session) release(ctx context.Context) error {
	ss.cancel()
	ss.s.mu.Lock()
	delete(ss.s.sessions, ss)
	ss.s.mu.Unlock()
	// The revoke must reach the server even when the caller's ctx is done (a Lock that gave up),
	// and it must not outlive the client: bounded by the request timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ss.s.timeout)
	defer cancel()
	_, err := ss.s.cli.Revoke(ctx, ss.id)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return err
}
