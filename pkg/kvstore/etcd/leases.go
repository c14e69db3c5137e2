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

// TTL keys live on leases. A Put with a TTL but no KeepAlive grants a lease of its own for the
// key. KeepAlive keys of one TTL (in whole seconds) share one lease per store, kept alive by one
// keep-alive stream: 10,000 registered entries then cost one lease and one goroutine, not
// 10,000 of each. Refreshing a lease changes neither the keys' ModRevision nor sends a watch
// event.
//
// A shared lease counts the keys this store put on it (refs). Which lease a key was on is read
// from each write's own PrevKv, so concurrent writes of one key cannot confuse the count: a write
// adds one to the lease it puts the key on and takes one off the lease the key left. When the
// count drops to zero the keep-alive stops and the lease, carrying no key of ours, expires by
// itself (a revoke would add a round trip to every write). A key deleted by another client is
// not seen, which only keeps a lease alive longer than needed — never shorter.

// keptLease is a lease this store keeps alive.
type keptLease struct {
	id   clientv3.LeaseID
	secs int64
	refs int // keys of this store on the lease, including writes in flight
	stop context.CancelFunc
}

// leaseSeconds is the lease TTL for a key TTL. etcd leases have whole seconds; rounding to the
// nearest second keeps the key present while it is refreshed more often than ttl − 0.5s and
// gone within ttl + 0.5s (plus the server's expiry check, every 500ms): inside TTLBound's
// ttl + 1s. The server raises any TTL below its minimum (1.5 × election timeout, 2s with the
// default 1s election timeout).
func leaseSeconds(ttl time.Duration) int64 {
	return max(int64((ttl+time.Second/2)/time.Second), 1)
}

// grant returns the lease for a TTL write: a new one, or with keepAlive the store's shared lease
// of that TTL (created and kept alive on first use). A keepAlive grant counts the write on the
// lease; the caller takes it off again (unref) when the write fails.
func (s *Store) grant(ctx context.Context, ttl time.Duration, keepAlive bool) (clientv3.LeaseID, error) {
	secs := leaseSeconds(ttl)
	if keepAlive {
		s.mu.Lock()
		if kl := s.shared[secs]; kl != nil {
			kl.refs++
			s.mu.Unlock()
			return kl.id, nil
		}
		s.mu.Unlock()
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Grant(ctx, secs)
	if err != nil {
		return 0, err
	}
	if !keepAlive {
		return resp.ID, nil
	}
	s.mu.Lock()
	if kl := s.shared[secs]; kl != nil { // another write created it meanwhile: ours expires unused
		kl.refs++
		s.mu.Unlock()
		return kl.id, nil
	}
	kctx, stop := context.WithCancel(s.ctx)
	kl := &keptLease{id: resp.ID, secs: secs, refs: 1, stop: stop}
	s.kept[resp.ID] = kl
	s.shared[secs] = kl
	s.mu.Unlock()
	if !s.goroutine(func() { s.refresh(kctx, resp.ID) }) {
		s.drop(resp.ID)
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

// released takes the keys that left leases (the given previous pairs) off this store's kept
// leases; leases of other clients are ignored.
func (s *Store) released(prev ...*mvccpb.KeyValue) {
	for _, kv := range prev {
		if kv != nil && kv.Lease != 0 {
			s.unref(clientv3.LeaseID(kv.Lease))
		}
	}
}

// unref takes one key off a kept lease, and stops keeping it alive when none is left.
func (s *Store) unref(id clientv3.LeaseID) {
	s.mu.Lock()
	kl, ok := s.kept[id]
	if ok {
		kl.refs--
	}
	s.mu.Unlock()
	if ok && kl.refs <= 0 {
		s.drop(id)
	}
}

// drop stops refreshing a lease, whatever its count (it is lost, or nothing of ours is on it).
func (s *Store) drop(id clientv3.LeaseID) {
	s.mu.Lock()
	kl, ok := s.kept[id]
	delete(s.kept, id)
	if ok && s.shared[kl.secs] == kl {
		delete(s.shared, kl.secs)
	}
	s.mu.Unlock()
	if ok {
		kl.stop()
	}
}

// refresh keeps a lease alive until ctx ends. The client's keep-alive stream gives up when the
// server stays silent for a whole TTL; the lease may still exist (a server restart renews
// every lease), so refresh starts it again — unless the server says the lease is gone, and
// with it the key.
func (s *Store) refresh(ctx context.Context, id clientv3.LeaseID) {
	defer s.drop(id)
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
