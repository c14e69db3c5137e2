package etcdv2

import (
	"context"
	"sync"
	"time"

	client "go.etcd.io/etcd/client/v2"

	"github.com/kvop/kvop/pkg/kvstore"
)

// refresher renews the TTL of one value node that this store wrote, without it counting as a
// change. v2's refresh (refresh=true) renews a TTL without notifying watchers, but it does
// move the node's ModifiedIndex, which is our LastIndex. So the first refresh rewrites the
// value with its LastIndex spelled out ("#<index>", see layout.go) — a compare-and-swap that
// watchers see but that changes neither value nor LastIndex, so Watch sends nothing — and
// later refreshes are plain v2 refreshes. Every refresh compares on the ModifiedIndex of the
// previous one, so it fails (and never resurrects or overwrites anything) once the key was
// deleted, expired or written by anyone else.
type refresher struct {
	node string        // the value node
	raw  string        // its value as last written by us
	mod  uint64        // its ModifiedIndex after our last write
	ttl  time.Duration // whole seconds
}

func newRefresher(node *client.Node, ttl time.Duration) *refresher {
	return &refresher{node: node.Key, raw: node.Value, mod: node.ModifiedIndex, ttl: ttl}
}

// refresh renews the TTL once. A refresh whose answer was lost (its timeout cut it off) may
// still have been applied, moving the node's ModifiedIndex; the next refresh then fails its
// index check. So on that failure the node is read: if it holds exactly the tagged value this
// refresher writes — which carries our own write's index, so nobody else writes it — it is still
// ours, and the refresher adopts its index instead of giving the key up.
func (r *refresher) refresh(ctx context.Context, kapi client.KeysAPI) error {
	var (
		resp *client.Response
		err  error
	)
	tagged := r.raw
	if _, last, explicit := decodeValue(r.raw, r.mod); !explicit {
		tagged = string(indexTag) + uitoa(last) + r.raw
		resp, err = kapi.Set(ctx, r.node, tagged, &client.SetOptions{PrevIndex: r.mod, TTL: r.ttl})
	} else {
		resp, err = kapi.Set(ctx, r.node, "", &client.SetOptions{PrevIndex: r.mod, TTL: r.ttl, Refresh: true})
	}
	if etcdCode(err) == client.ErrorCodeTestFailed {
		if got, gerr := kapi.Get(ctx, r.node, nil); gerr == nil && got.Node.Value == tagged {
			r.raw, r.mod = tagged, got.Node.ModifiedIndex
			return nil
		}
	}
	if err != nil {
		return err
	}
	r.raw, r.mod = tagged, resp.Node.ModifiedIndex
	return nil
}

// gone reports whether a refresh error means the node is no longer ours: deleted, expired,
// or written by someone else since our last write.
func gone(err error) bool {
	switch etcdCode(err) {
	case client.ErrorCodeKeyNotFound, client.ErrorCodeTestFailed, client.ErrorCodeNotFile, client.ErrorCodeNotDir:
		return true
	}
	return false
}

// refreshInterval is how often a node with ttl is refreshed: three tries before it expires.
func refreshInterval(ttl time.Duration) time.Duration { return ttl / 3 }

// keepAlive is the background refresh of one KeepAlive key of this store.
type keepAlive struct {
	stop chan struct{}
	once sync.Once
}

func (ka *keepAlive) halt() { ka.once.Do(func() { close(ka.stop) }) }

// keepAlive records the write of key k (now node n): it ends the keep-alive of an earlier
// write of k by this store and, when keep is set, starts one for this write.
func (s *Store) keepAlive(k string, n *client.Node, ttl time.Duration, keep bool) {
	s.mu.Lock()
	old := s.kept[k]
	delete(s.kept, k)
	if keep && !s.closed.Load() {
		ka := &keepAlive{stop: make(chan struct{})}
		s.kept[k] = ka
		r := newRefresher(n, ttl)
		s.wg.Go(func() { s.runKeepAlive(k, ka, r) })
	}
	s.mu.Unlock()
	if old != nil {
		old.halt()
	}
}

func (s *Store) stopKeepAlive(k string) {
	s.mu.Lock()
	ka := s.kept[k]
	delete(s.kept, k)
	s.mu.Unlock()
	if ka != nil {
		ka.halt()
	}
}

func (s *Store) stopKeepAlivesBelow(dir string) {
	s.mu.Lock()
	var stop []*keepAlive
	for k, ka := range s.kept {
		if kvstore.IsBelow(k, dir) {
			stop = append(stop, ka)
			delete(s.kept, k)
		}
	}
	s.mu.Unlock()
	for _, ka := range stop {
		ka.halt()
	}
}

// runKeepAlive refreshes key k until it is halted, the store closes, or the key is no longer
// the one this store wrote. A refresh that fails for want of a server is retried sooner; if
// the key expires meanwhile, the next refresh finds it gone.
func (s *Store) runKeepAlive(k string, ka *keepAlive, r *refresher) {
	defer func() {
		s.mu.Lock()
		if s.kept[k] == ka {
			delete(s.kept, k)
		}
		s.mu.Unlock()
	}()
	wait, retry := refreshInterval(r.ttl), time.Duration(0)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ka.stop:
			return
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		// One attempt may not take the whole connection timeout: during an etcd leader
		// election a request can hang that long, and a short TTL would run out meanwhile.
		ctx, cancel := context.WithTimeout(s.ctx, min(s.timeout, wait))
		err := r.refresh(ctx, s.kapi)
		cancel()
		switch {
		case err == nil:
			retry = 0
			t.Reset(wait)
		case gone(err):
			return
		default:
			retry = backoff(retry)
			t.Reset(min(retry, wait))
		}
	}
}
