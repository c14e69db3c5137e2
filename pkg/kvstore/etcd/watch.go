package etcd

import (
	"context"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvop/kvop/internal/retry"
	"github.com/kvop/kvop/pkg/kvstore"
)

// Watches read first and then watch from the revision after that read, so no change between
// the read and the watch is lost. The client resumes a broken watch stream by itself from the
// last revision it delivered (also across a server restart); when it cannot — the history was
// compacted, the server cancelled the watch, the member lost its leader — follow re-reads and
// watches again from the new revision, and the state is sent if it differs from the last one.

// follow watches key (or, with prefix, every key starting with it) from revision rev+1 until
// ctx ends or a callback returns false. apply gets the events of each response. When the watch
// breaks, resync re-reads and returns the revision to go on from; its errors (no server) are
// retried after retryDelay.
func (s *Store) follow(ctx context.Context, key string, prefix bool, rev int64,
	apply func([]*clientv3.Event) bool,
	resync func(context.Context) (rev int64, more bool, err error),
) {
	for {
		// WithRequireLeader: a member cut off from its cluster ends the watch instead of
		// leaving it silent, and we resync through another member.
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		opts := []clientv3.OpOption{clientv3.WithRev(rev + 1)}
		if prefix {
			opts = append(opts, clientv3.WithPrefix())
		}
		progressed := false
		for resp := range s.cli.Watch(wctx, key, opts...) {
			if resp.Canceled || resp.Err() != nil {
				break
			}
			if len(resp.Events) == 0 {
				continue // created or progress notification
			}
			// No need to track the revision: after a break, resync sets where to go on from.
			progressed = true
			if !apply(resp.Events) {
				cancel()
				return
			}
		}
		cancel()
		// A watch that keeps breaking at once (say, refused by the server) must not spin.
		if !progressed && !retry.Sleep(ctx, retryDelay) {
			return
		}
		for {
			if ctx.Err() != nil {
				return
			}
			r, more, err := resync(ctx)
			if err == nil {
				if !more {
					return
				}
				rev = r
				break
			}
			if !retry.Sleep(ctx, retryDelay) {
				return
			}
		}
	}
}

// sender returns a function that sends v on out unless ctx ends first.
func sender[T any](ctx context.Context, out chan<- T) func(T) bool {
	return func(v T) bool {
		select {
		case out <- v:
			return true
		case <-ctx.Done():
			return false
		}
	}
}

// Watch sends the pair at key (nil when absent), then the pair after each change.
func (s *Store) Watch(ctx context.Context, key string) (<-chan *kvstore.KVPair, error) {
	k, err := s.normalize("watch", key)
	if err != nil {
		return nil, err
	}
	first, rev, err := s.get(ctx, k)
	if err != nil {
		return nil, s.fail(ctx, "watch", k, err)
	}
	out := make(chan *kvstore.KVPair, 1)
	out <- first
	last := versionOf(first) // what the receiver saw last; never the sent pair, which is theirs
	wctx, stop := s.untilClosed(ctx)
	started := s.goroutine(func() {
		defer close(out)
		defer stop()
		send := sender(wctx, out)
		s.follow(wctx, k, false, rev,
			func(evs []*clientv3.Event) bool {
				// Several changes in one response coalesce into the latest.
				var p *kvstore.KVPair
				if ev := evs[len(evs)-1]; ev.Type == clientv3.EventTypePut {
					p = pair(ev.Kv)
				}
				last = versionOf(p)
				return send(p)
			},
			func(ctx context.Context) (int64, bool, error) {
				p, rev, err := s.get(ctx, k)
				if err != nil {
					return 0, false, err
				}
				if v := versionOf(p); v != last {
					last = v
					if !send(p) {
						return 0, false, nil
					}
				}
				return rev, true, nil
			})
	})
	if !started {
		stop()
		return nil, kvstore.Wrap(kvstore.Etcd, "watch", k, kvstore.ErrClosed)
	}
	return out, nil
}

// WatchTree sends the full list below directory, then the full list after each change. The
// list is kept in memory and updated from the events, so a change costs no read.
func (s *Store) WatchTree(ctx context.Context, directory string) (<-chan []*kvstore.KVPair, error) {
	dir, err := s.normalize("watchtree", directory)
	if err != nil {
		return nil, err
	}
	first, rev, err := s.list(ctx, dir)
	if err != nil {
		return nil, s.fail(ctx, "watchtree", dir, err)
	}
	// The state holds pairs of its own: the lists sent belong to the receiver.
	state := make(map[string]kvstore.KVPair, len(first))
	for _, p := range first {
		state[p.Key] = *p
	}
	out := make(chan []*kvstore.KVPair, 1)
	out <- first
	last := versionsOf(first)
	wctx, stop := s.untilClosed(ctx)
	started := s.goroutine(func() {
		defer close(out)
		defer stop()
		send := sender(wctx, out)
		s.follow(wctx, dirPrefix(dir), true, rev,
			func(evs []*clientv3.Event) bool {
				for _, ev := range evs {
					if ev.Type == clientv3.EventTypePut {
						state[string(ev.Kv.Key)] = *pair(ev.Kv)
					} else {
						delete(state, string(ev.Kv.Key))
					}
				}
				list := sorted(state)
				last = versionsOf(list)
				return send(list)
			},
			func(ctx context.Context) (int64, bool, error) {
				list, rev, err := s.list(ctx, dir)
				if err != nil {
					return 0, false, err
				}
				clear(state)
				for _, p := range list {
					state[p.Key] = *p
				}
				if v := versionsOf(list); !slices.Equal(v, last) {
					last = v
					if !send(list) {
						return 0, false, nil
					}
				}
				return rev, true, nil
			})
	})
	if !started {
		stop()
		return nil, kvstore.Wrap(kvstore.Etcd, "watchtree", dir, kvstore.ErrClosed)
	}
	return out, nil
}

// sorted returns a WatchTree state as a new list of new pairs, sorted by key.
func sorted(state map[string]kvstore.KVPair) []*kvstore.KVPair {
	out := make([]*kvstore.KVPair, 0, len(state))
	for _, p := range state {
		out = append(out, &p)
	}
	slices.SortFunc(out, func(a, b *kvstore.KVPair) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// version identifies one state of a key: LastIndex is a revision, unique store-wide.
// The zero version is an absent key.
type version struct {
	key string
	rev uint64
}

func versionOf(p *kvstore.KVPair) version {
	if p == nil {
		return version{}
	}
	return version{p.Key, p.LastIndex}
}

func versionsOf(pairs []*kvstore.KVPair) []version {
	out := make([]version, len(pairs))
	for i, p := range pairs {
		out[i] = versionOf(p)
	}
	return out
}
