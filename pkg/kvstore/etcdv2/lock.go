package etcdv2

import (
	"context"
	"sync"
	"time"

	client "go.etcd.io/etcd/client/v2"

	"github.com/kvop/kvop/internal/retry"
	"github.com/kvop/kvop/pkg/kvstore"
)

// A lock is the lock key's own value node, holding LockOptions.Value, so that Get(lockKey)
// names the holder. Taking it is one create-if-absent (prevExist=false) with the lock's TTL:
// v2 decides that atomically on the leader, so two clients can never both create it. While
// held, the node is refreshed like a KeepAlive key (refresher), each refresh comparing on the
// ModifiedIndex of the previous one, so a holder whose node was deleted, expired or replaced
// can never renew someone else's lock. Waiters watch the node and try again after each change,
// so Unlock (a compare-and-delete) wakes them at once and a dead holder's lock expires within
// TTL + 1s.

// locker is a kvstore.Locker on one key.
type locker struct {
	s     *Store
	key   string
	value []byte
	ttl   time.Duration // whole seconds

	mu  sync.Mutex
	cur *hold // the current hold, also after it was lost; nil before Lock and after Unlock
}

// hold is one tenure of a lock: from a successful Lock to Unlock, loss, or Close.
type hold struct {
	s    *Store
	key  string
	last uint64 // the lock node's LastIndex: the index of our create
	r    *refresher

	lost     chan struct{} // closed on loss, Unlock and Close
	lostOnce sync.Once
	ctx      context.Context    // ends the refresher and the watcher
	stop     context.CancelFunc // cancels ctx
	wg       sync.WaitGroup     // the refresher and the watcher

	relMu    sync.Mutex
	released bool
}

// NewLock returns a Locker for key; it does not take the lock.
func (s *Store) NewLock(ctx context.Context, key string, opts *kvstore.LockOptions) (kvstore.Locker, error) {
	k, err := s.normalize("newlock", key)
	if err != nil {
		return nil, err
	}
	l := &locker{s: s, key: k, ttl: kvstore.DefaultLockTTL}
	if opts != nil {
		l.value = append([]byte(nil), opts.Value...)
		if opts.TTL > 0 {
			l.ttl = opts.TTL
		}
	}
	l.ttl = ttlSeconds(l.ttl)
	return l, nil
}

// Lock blocks until the lock is held or ctx is done. A Locker that holds the lock already
// returns the same lost channel.
func (l *locker) Lock(ctx context.Context) (<-chan struct{}, error) {
	s := l.s
	fail := func(err error) (<-chan struct{}, error) { return nil, s.fail(ctx, "lock", l.key, err) }
	l.mu.Lock()
	if h := l.cur; h != nil && !h.isLost() {
		l.mu.Unlock()
		return h.lost, nil
	}
	l.mu.Unlock()
	if s.closed.Load() {
		return fail(kvstore.ErrClosed)
	}

	wctx, cancel := s.untilClosed(ctx)
	defer cancel()
	node, enc := valueNode(l.key), encodeValue(l.value, 0)
	var delay time.Duration
	for {
		resp, err := l.create(node, enc)
		if err == nil {
			if ctx.Err() != nil {
				l.dropCreated(resp.Node)
				return fail(ctx.Err())
			}
			return l.held(resp.Node)
		}
		switch {
		case s.closed.Load():
			return fail(kvstore.ErrClosed)
		case ctx.Err() != nil:
			return fail(ctx.Err())
		case is(err, client.ErrorCodeNodeExist):
			// Held by someone: wait for the next change of the node after the index the
			// refusal carries, then try again. Any answer of the watch is worth a try.
			index := etcdIndex(err)
			if index == 0 { // no index to watch after: a watch might miss the release
				delay = backoff(delay)
				retry.Sleep(wctx, delay)
				continue
			}
			delay = 0
			w := s.kapi.Watcher(node, &client.WatcherOptions{AfterIndex: index})
			if _, err := w.Next(wctx); err != nil && wctx.Err() == nil {
				delay = backoff(delay)
				retry.Sleep(wctx, delay)
			}
		case etcdCode(err) != 0 || isTLSRefusal(err):
			return fail(err) // refused (auth, a node kvop did not write): waiting will not help
		default:
			delay = backoff(delay)
			retry.Sleep(wctx, delay)
		}
	}
}

// create tries once to take the lock node. The request is not cut short by the caller's ctx,
// only by Close and the request timeout: a create the server applied but whose answer was
// abandoned would leave a lock that nobody holds, refreshes or releases, and every candidate
// would wait a whole TTL for it to expire (a Lock given up at the moment of a handover did
// exactly that). Lock releases a create that succeeded after its ctx ended.
func (l *locker) create(node, enc string) (*client.Response, error) {
	cctx, ccancel := l.s.untilClosed(context.Background())
	defer ccancel()
	octx, ocancel := l.s.opCtx(cctx)
	defer ocancel()
	return l.s.kapi.Set(octx, node, enc, &client.SetOptions{PrevExist: client.PrevNoExist, TTL: l.ttl})
}

// dropCreated deletes a lock node this locker has just created but will not hold (compare on
// its index: never someone else's node).
func (l *locker) dropCreated(n *client.Node) {
	s := l.s
	ctx, cancel := s.opCtx(context.Background())
	defer cancel()
	if _, err := s.kapi.Delete(ctx, n.Key, &client.DeleteOptions{PrevIndex: n.ModifiedIndex}); err == nil {
		s.prune(ctx, dirNode(l.key))
	}
}

// held records a new hold of the lock whose node is n and starts its refresher and watcher.
func (l *locker) held(n *client.Node) (<-chan struct{}, error) {
	s := l.s
	h := &hold{s: s, key: l.key, last: n.ModifiedIndex, r: newRefresher(n, l.ttl), lost: make(chan struct{})}
	h.ctx, h.stop = context.WithCancel(s.ctx)
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		_ = h.release(context.Background())
		return nil, kvstore.Wrap(kvstore.EtcdV2, "lock", l.key, kvstore.ErrClosed)
	}
	s.held[h] = struct{}{}
	h.wg.Add(2)
	s.wg.Go(func() { defer h.wg.Done(); h.refresh() })
	s.wg.Go(func() { defer h.wg.Done(); h.watch() })
	s.mu.Unlock()

	l.mu.Lock()
	l.cur = h
	l.mu.Unlock()
	return h.lost, nil
}

// Unlock releases the lock. It returns ErrNotLocked if this Locker does not hold it, and nil
// after the lock was lost (the loss was already signalled on the Lock channel).
func (l *locker) Unlock(ctx context.Context) error {
	l.mu.Lock()
	h := l.cur
	l.cur = nil
	l.mu.Unlock()
	if h == nil {
		return kvstore.Wrap(kvstore.EtcdV2, "unlock", l.key, kvstore.ErrNotLocked)
	}
	return h.release(ctx)
}

func (h *hold) isLost() bool {
	select {
	case <-h.lost:
		return true
	default:
		return false
	}
}

// lose ends the hold's background work and tells the holder.
func (h *hold) lose() {
	h.stop()
	h.lostOnce.Do(func() { close(h.lost) })
}

// release deletes the lock node if it is still ours and ends the hold. It is idempotent:
// Unlock and Close may both call it.
func (h *hold) release(ctx context.Context) error {
	h.relMu.Lock()
	defer h.relMu.Unlock()
	if h.released {
		return nil
	}
	h.released = true
	wasLost := h.isLost()
	h.stop()
	h.wg.Wait() // the refresher is done: h.r.mod is the node's last ModifiedIndex we know of
	defer func() {
		h.lostOnce.Do(func() { close(h.lost) })
		h.s.mu.Lock()
		delete(h.s.held, h)
		h.s.mu.Unlock()
	}()
	if wasLost {
		return nil
	}
	s := h.s
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	// A refresh whose answer we missed may have moved the ModifiedIndex: compareAnd finds the
	// node by its LastIndex then.
	_, err := s.compareAnd(octx, h.key, h.last, h.r.mod, func(mod uint64) (*client.Response, error) {
		return s.kapi.Delete(octx, h.r.node, &client.DeleteOptions{PrevIndex: mod})
	})
	switch {
	case err == nil:
		s.prune(octx, dirNode(h.key))
	case is(err, client.ErrorCodeKeyNotFound) || is(err, client.ErrorCodeTestFailed):
		// Lost meanwhile: nothing of ours to delete.
	default:
		return s.fail(ctx, "unlock", h.key, err)
	}
	return nil
}

// refresh renews the lock node's TTL until the hold ends. The lock counts as lost when a
// refresh finds the node gone or replaced, or shortly before the node may have expired for want
// of a successful refresh (the server out of reach): the server counts the TTL from a moment
// after we sent the last successful refresh, so until then nobody else can have the lock.
func (h *hold) refresh() {
	s := h.s
	ttl := h.r.ttl
	wait, retry := refreshInterval(ttl), time.Duration(0)
	deadline := time.Now().Add(ttl - ttl/10) // the create was sent before now
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		// Not under h.ctx: release waits for this refresh rather than cut it off and be left
		// unsure of the node's ModifiedIndex.
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), min(s.timeout, wait))
		err := h.r.refresh(ctx, s.kapi)
		cancel()
		switch {
		case err == nil:
			deadline, retry = sent.Add(ttl-ttl/10), 0
			t.Reset(wait)
		case gone(err) || !time.Now().Before(deadline):
			h.lose()
			return
		default:
			retry = backoff(retry)
			t.Reset(min(retry, time.Until(deadline)))
		}
	}
}

// watch tells the holder at once when the lock node is deleted or written by someone else,
// rather than at the next refresh. Our own refreshes do not count: the first rewrites the value
// with the same LastIndex, the later ones notify no watcher.
func (h *hold) watch() {
	s := h.s
	ctx := h.ctx
	ours := func(n *client.Node) bool {
		if n == nil || n.Key != h.r.node || n.Dir {
			return false
		}
		_, last, _ := decodeValue(n.Value, n.ModifiedIndex)
		return last == h.last
	}
	w := s.kapi.Watcher(h.r.node, &client.WatcherOptions{AfterIndex: h.last})
	var delay time.Duration
	for {
		resp, err := w.Next(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			delay = 0
			switch resp.Action {
			case "delete", "expire", "compareAndDelete":
				h.lose()
				return
			}
			if !ours(resp.Node) {
				h.lose()
				return
			}
			continue
		}
		// The watch broke (server gone, history outdated): read the node, and watch on after
		// the read if it is still ours.
		delay = backoff(delay)
		if !retry.Sleep(ctx, delay) {
			return
		}
		rctx, rcancel := s.opCtx(ctx)
		n, index, rerr := s.read(rctx, h.key, false)
		rcancel()
		switch {
		case rerr != nil:
			continue // try again after the next backoff
		case !ours(n):
			h.lose()
			return
		}
		w = s.kapi.Watcher(h.r.node, &client.WatcherOptions{AfterIndex: index})
	}
}
