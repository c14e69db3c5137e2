package consul

import (
	"bytes"
	"context"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kvop/kvop/pkg/kvstore"
)

const (
	// blockWait is how long one blocking query waits for a change. The server adds up to
	// 1/16 of it as jitter.
	blockWait = 30 * time.Second
	// Retry delays of a watch whose server cannot be reached.
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// queryOpts returns the options of a read: a blocking query when waitIndex > 0.
func (s *store) queryOpts(ctx context.Context, waitIndex uint64) *api.QueryOptions {
	q := &api.QueryOptions{}
	if waitIndex > 0 {
		q.WaitIndex, q.WaitTime = waitIndex, blockWait
	}
	return q.WithContext(ctx)
}

// queryTimeout is the deadline of a read: a blocking query may take blockWait plus jitter.
func (s *store) queryTimeout(waitIndex uint64) time.Duration {
	if waitIndex == 0 {
		return s.cfg.ConnectionTimeout
	}
	return blockWait + blockWait/16 + s.cfg.ConnectionTimeout
}

// watchContext is ctx, also cancelled when the store closes.
func (s *store) watchContext(ctx context.Context) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return wctx, func() { stop(); cancel() }
}

func (s *store) Watch(ctx context.Context, key string) (<-chan *kvstore.KVPair, error) {
	k, err := kvstore.NormalizeKey(key)
	if err != nil {
		return nil, wrap("watch", key, err)
	}
	read := func(ctx context.Context, waitIndex uint64) (*kvstore.KVPair, uint64, error) {
		p, idx, err := s.get(ctx, k, waitIndex)
		if err != nil || p == nil {
			return nil, idx, err
		}
		return toPair(p), idx, nil
	}
	ch, err := watchLoop(s, ctx, read, samePair)
	return ch, wrap("watch", k, err)
}

func (s *store) WatchTree(ctx context.Context, directory string) (<-chan []*kvstore.KVPair, error) {
	dir, err := kvstore.NormalizeKey(directory)
	if err != nil {
		return nil, wrap("watchtree", directory, err)
	}
	read := func(ctx context.Context, waitIndex uint64) ([]*kvstore.KVPair, uint64, error) {
		return s.list(ctx, dir, waitIndex)
	}
	ch, err := watchLoop(s, ctx, read, sameList)
	return ch, wrap("watchtree", dir, err)
}

// watchLoop reads the current state (errors go to the caller), then follows it with blocking
// queries in a goroutine, sending every state that differs from the last one sent: blocking
// queries may return without a change (timeouts, changes elsewhere under the same index), so
// the comparison, not the wake-up, decides what is an event.
//
// After an error it backs off, then re-reads without waiting, so a change made while the
// server was away (or a restarted server whose index went backwards) is seen at once. The
// channel closes when ctx is done or the store closes.
func watchLoop[T any](s *store, ctx context.Context, read func(ctx context.Context, waitIndex uint64) (T, uint64, error), same func(a, b T) bool) (<-chan T, error) {
	wctx, cancel := s.watchContext(ctx)
	state, index, err := read(wctx, 0)
	if err != nil {
		cancel()
		return nil, err
	}
	ch := make(chan T, 1)
	ch <- state
	started := s.spawn(func() {
		defer close(ch)
		defer cancel()
		last := state
		backoff := minBackoff
		resync := false
		for {
			// After an error the index we hold may be meaningless (a server that restarted
			// empty would make a blocking query on it wait out its full time): read plainly.
			waitIndex := max(index, 1)
			if resync {
				waitIndex = 0
			}
			next, nextIndex, err := read(wctx, waitIndex)
			if wctx.Err() != nil {
				return
			}
			if err != nil {
				if sleepCtx(wctx, backoff) != nil {
					return
				}
				backoff = min(2*backoff, maxBackoff)
				resync = true
				continue
			}
			resync = false
			backoff = minBackoff
			// Consul's rule: an index that goes backwards (a restored or rebuilt server)
			// means starting over from a plain read.
			if nextIndex < index {
				nextIndex = 0
			}
			index = nextIndex
			if same(last, next) {
				continue
			}
			select {
			case ch <- next:
				last = next
			case <-wctx.Done():
				return
			}
		}
	})
	if !started {
		cancel()
		close(ch)
		return nil, kvstore.ErrClosed
	}
	return ch, nil
}

func samePair(a, b *kvstore.KVPair) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.LastIndex == b.LastIndex && bytes.Equal(a.Value, b.Value)
}

func sameList(a, b []*kvstore.KVPair) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !samePair(a[i], b[i]) {
			return false
		}
	}
	return true
}
