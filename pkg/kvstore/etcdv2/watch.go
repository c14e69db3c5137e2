package etcdv2

import (
	"bytes"
	"context"
	"time"

	client "go.etcd.io/etcd/client/v2"

	"github.com/kvop/kvop/internal/retry"
	"github.com/kvop/kvop/pkg/kvstore"
)

// Watches read the state, send it, and then long-poll v2 for the next event after the etcd
// index of that read, so no change between read and watch is lost. After every event (or a
// broken watch: server restarted, history outdated with error 401) they read again and send
// the state if it differs from the last one sent. Reading rather than applying events keeps
// the layout's details out of the way: the events of value markers of other keys, of pruned
// directories and of our own keep-alive rewrites simply leave the state as it was. A consumer
// that is slow to receive makes changes coalesce; the latest state is always sent.

// rearm bounds one long poll, so that a connection that died silently (no TCP reset) is noticed.
const rearm = time.Minute

// watchLoop runs a watch on node (recursive for trees) until ctx ends: read returns the state
// and the etcd index it saw, same compares states, send delivers one (false when ctx ended).
func watchLoop[T any](ctx context.Context, s *Store, node string, recursive bool,
	read func(ctx context.Context) (T, uint64, error), same func(a, b T) bool, send func(T) bool,
	state T, index uint64) {
	if !send(state) {
		return
	}
	var delay time.Duration
	for {
		w := s.kapi.Watcher(node, &client.WatcherOptions{AfterIndex: index, Recursive: recursive})
		for {
			pctx, cancel := context.WithTimeout(ctx, rearm)
			_, err := w.Next(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err == nil || !isTimeout(pctx, err) {
				if err != nil && !is(err, client.ErrorCodeEventIndexCleared) {
					delay = backoff(delay)
					if !retry.Sleep(ctx, delay) {
						return
					}
				}
				break
			}
			// A long poll that merely lasted long: poll again from where it was.
		}
		for {
			rctx, cancel := s.opCtx(ctx)
			next, nextIndex, err := read(rctx)
			cancel()
			if err == nil {
				delay = 0
				if !same(next, state) {
					if !send(next) {
						return
					}
					state = next
				}
				index = nextIndex
				break
			}
			delay = backoff(delay)
			if !retry.Sleep(ctx, delay) {
				return
			}
		}
	}
}

// isTimeout reports whether err is the end of pctx's own deadline.
func isTimeout(pctx context.Context, err error) bool {
	return err != nil && pctx.Err() == context.DeadlineExceeded
}

// sender returns a send function for ch that gives up when ctx ends.
func sender[T any](ctx context.Context, ch chan<- T) func(T) bool {
	return func(v T) bool {
		select {
		case ch <- v:
			return true
		case <-ctx.Done():
			return false
		}
	}
}

// Watch sends the pair at key (nil when absent), then the pair after every change.
func (s *Store) Watch(ctx context.Context, key string) (<-chan *kvstore.KVPair, error) {
	k, err := s.normalize("watch", key)
	if err != nil {
		return nil, err
	}
	read := func(ctx context.Context) (*kvstore.KVPair, uint64, error) {
		n, index, err := s.read(ctx, k, false)
		if err != nil || n == nil {
			return nil, index, err
		}
		return pair(k, n), index, nil
	}
	rctx, cancel := s.opCtx(ctx)
	first, index, err := read(rctx)
	cancel()
	if err != nil {
		return nil, s.fail(ctx, "watch", k, err)
	}
	ch := make(chan *kvstore.KVPair)
	wctx, wcancel := s.untilClosed(ctx)
	if !s.goroutine(func() {
		defer wcancel()
		defer close(ch)
		watchLoop(wctx, s, valueNode(k), false, read, samePair, sender(wctx, ch), first, index)
	}) {
		wcancel()
		return nil, kvstore.Wrap(kvstore.EtcdV2, "watch", k, kvstore.ErrClosed)
	}
	return ch, nil
}

// WatchTree sends the full List of directory (empty when none), then the list after every
// change below it.
func (s *Store) WatchTree(ctx context.Context, directory string) (<-chan []*kvstore.KVPair, error) {
	k, err := s.normalize("watchtree", directory)
	if err != nil {
		return nil, err
	}
	read := func(ctx context.Context) ([]*kvstore.KVPair, uint64, error) { return s.list(ctx, k, false) }
	rctx, cancel := s.opCtx(ctx)
	first, index, err := read(rctx)
	cancel()
	if err != nil {
		return nil, s.fail(ctx, "watchtree", k, err)
	}
	ch := make(chan []*kvstore.KVPair)
	wctx, wcancel := s.untilClosed(ctx)
	if !s.goroutine(func() {
		defer wcancel()
		defer close(ch)
		watchLoop(wctx, s, dirNode(k), true, read, sameList, sender(wctx, ch), first, index)
	}) {
		wcancel()
		return nil, kvstore.Wrap(kvstore.EtcdV2, "watchtree", k, kvstore.ErrClosed)
	}
	return ch, nil
}

func samePair(a, b *kvstore.KVPair) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Key == b.Key && a.LastIndex == b.LastIndex && bytes.Equal(a.Value, b.Value)
}

func sameList(a, b []*kvstore.KVPair) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !samePair(a[i], b[i]) {
			return false
		}
	}
	return true
}
