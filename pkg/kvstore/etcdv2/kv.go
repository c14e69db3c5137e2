package etcdv2

import (
	"context"
	"sort"
	"time"

	client "go.etcd.io/etcd/client/v2"

	"github.com/kvop/kvop/pkg/kvstore"
)

// ttlSeconds rounds a TTL up to whole seconds, the unit of v2 (the client would truncate, and
// a key refreshed every 1.5s must not vanish for a TTL of 1.5s).
func ttlSeconds(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return 0
	}
	return (ttl + time.Second - 1).Truncate(time.Second)
}

func writeTTL(opts *kvstore.WriteOptions) (ttl time.Duration, keep bool) {
	if opts == nil {
		return 0, false
	}
	ttl = ttlSeconds(opts.TTL)
	return ttl, ttl > 0 && opts.KeepAlive
}

// pair decodes a value node into the user's pair.
func pair(key string, n *client.Node) *kvstore.KVPair {
	v, last, _ := decodeValue(n.Value, n.ModifiedIndex)
	return &kvstore.KVPair{Key: key, Value: v, LastIndex: last}
}

// Put writes value at key. With a TTL the node expires natively; with KeepAlive too, the store
// refreshes it in the background (see keepalive.go). A plain Set replaces the node, so a Put
// without TTL also removes an earlier expiry.
func (s *Store) Put(ctx context.Context, key string, value []byte, opts *kvstore.WriteOptions) error {
	k, err := s.normalize("put", key)
	if err != nil {
		return err
	}
	ttl, keep := writeTTL(opts)
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.kapi.Set(octx, valueNode(k), encodeValue(value, 0), &client.SetOptions{TTL: ttl})
	if err != nil {
		return s.fail(ctx, "put", k, err)
	}
	s.keepAlive(k, resp.Node, ttl, keep)
	return nil
}

// get reads key's value node; quorum reads go through the leader (linearizable).
func (s *Store) get(ctx context.Context, k string, quorum bool) (*client.Node, error) {
	n, _, err := s.read(ctx, k, quorum)
	if err == nil && n == nil {
		err = client.Error{Code: client.ErrorCodeKeyNotFound, Message: "Key not found", Cause: valueNode(k)}
	}
	return n, err
}

// read reads key's value node, nil when absent, and the etcd index the read saw.
func (s *Store) read(ctx context.Context, k string, quorum bool) (*client.Node, uint64, error) {
	resp, err := s.kapi.Get(ctx, valueNode(k), &client.GetOptions{Quorum: quorum})
	switch {
	case is(err, client.ErrorCodeKeyNotFound) || is(err, client.ErrorCodeNotDir):
		return nil, etcdIndex(err), nil
	case err != nil:
		return nil, 0, err
	case resp.Node == nil || resp.Node.Dir:
		return nil, resp.Index, nil // not in kvop's layout: as good as absent
	}
	return resp.Node, resp.Index, nil
}

// Get returns the pair at key, or ErrKeyNotFound.
func (s *Store) Get(ctx context.Context, key string) (*kvstore.KVPair, error) {
	k, err := s.normalize("get", key)
	if err != nil {
		return nil, err
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	n, err := s.get(octx, k, true)
	if err != nil {
		return nil, s.fail(ctx, "get", k, err)
	}
	return pair(k, n), nil
}

// Exists reports whether key holds a value.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	k, err := s.normalize("exists", key)
	if err != nil {
		return false, err
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := s.get(octx, k, true); err != nil {
		if is(err, client.ErrorCodeKeyNotFound) {
			return false, nil
		}
		return false, s.fail(ctx, "exists", k, err)
	}
	return true, nil
}

// Delete removes key's value marker (keys below key stay) and then the directories it leaves
// empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.normalize("delete", key)
	if err != nil {
		return err
	}
	s.stopKeepAlive(k)
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := s.kapi.Delete(octx, valueNode(k), nil); err != nil && !is(err, client.ErrorCodeKeyNotFound) {
		return s.fail(ctx, "delete", k, err)
	}
	s.prune(octx, dirNode(k))
	return nil
}

// prune removes dir and its parents up to the root while they are empty, so that deleted keys
// leave no directories behind. Each delete is of an empty directory only ({Dir: true} without
// Recursive fails on a non-empty one), so a writer that just created a key below never loses
// it; pruning stops at the first directory that is not empty. Best effort: errors are ignored.
func (s *Store) prune(ctx context.Context, dir string) {
	for ; dir != ""; dir = parentNode(dir) {
		if _, err := s.kapi.Delete(ctx, dir, &client.DeleteOptions{Dir: true}); err != nil &&
			!is(err, client.ErrorCodeKeyNotFound) {
			return
		}
	}
}

// list reads the tree below directory k and returns its keys, sorted, and the etcd index the
// read saw (watches continue after it). None is an empty list, not an error.
func (s *Store) list(ctx context.Context, k string, quorum bool) ([]*kvstore.KVPair, uint64, error) {
	resp, err := s.kapi.Get(ctx, dirNode(k), &client.GetOptions{Recursive: true, Quorum: quorum})
	if err != nil {
		if is(err, client.ErrorCodeKeyNotFound) {
			return []*kvstore.KVPair{}, etcdIndex(err), nil
		}
		return nil, 0, err
	}
	out := []*kvstore.KVPair{}
	var walk func(n *client.Node)
	walk = func(n *client.Node) {
		if n.Dir {
			for _, c := range n.Nodes {
				walk(c)
			}
			return
		}
		if uk, ok := userKey(n.Key); ok && kvstore.IsBelow(uk, k) {
			out = append(out, pair(uk, n))
		}
	}
	if resp.Node != nil && resp.Node.Dir {
		walk(resp.Node)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, resp.Index, nil
}

// List returns every key strictly below directory, sorted, or ErrKeyNotFound.
func (s *Store) List(ctx context.Context, directory string) ([]*kvstore.KVPair, error) {
	k, err := s.normalize("list", directory)
	if err != nil {
		return nil, err
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	out, _, err := s.list(octx, k, true)
	if err != nil {
		return nil, s.fail(ctx, "list", k, err)
	}
	if len(out) == 0 {
		return nil, kvstore.Wrap(kvstore.EtcdV2, "list", k, kvstore.ErrKeyNotFound)
	}
	return out, nil
}

// DeleteTree removes every key strictly below directory: every child of its directory node but
// the directory's own value marker, each with its whole subtree.
func (s *Store) DeleteTree(ctx context.Context, directory string) error {
	k, err := s.normalize("deletetree", directory)
	if err != nil {
		return err
	}
	s.stopKeepAlivesBelow(k)
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	dir := dirNode(k)
	resp, err := s.kapi.Get(octx, dir, &client.GetOptions{Quorum: true})
	if err != nil {
		if is(err, client.ErrorCodeKeyNotFound) || is(err, client.ErrorCodeNotDir) {
			return nil
		}
		return s.fail(ctx, "deletetree", k, err)
	}
	if resp.Node == nil || !resp.Node.Dir {
		return nil
	}
	for _, c := range resp.Node.Nodes {
		if c.Key == dir+"/"+marker {
			continue
		}
		_, err := s.kapi.Delete(octx, c.Key, &client.DeleteOptions{Dir: c.Dir, Recursive: c.Dir})
		if err != nil && !is(err, client.ErrorCodeKeyNotFound) {
			return s.fail(ctx, "deletetree", k, err)
		}
	}
	s.prune(octx, dir)
	return nil
}

// AtomicPut writes key only if it is absent (previous == nil) or unchanged since previous.
func (s *Store) AtomicPut(ctx context.Context, key string, value []byte, previous *kvstore.KVPair, opts *kvstore.WriteOptions) (bool, *kvstore.KVPair, error) {
	k, err := s.normalize("atomicput", key)
	if err != nil {
		return false, nil, err
	}
	ttl, keep := writeTTL(opts)
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	node, enc := valueNode(k), encodeValue(value, 0)
	var resp *client.Response
	if previous == nil {
		resp, err = s.kapi.Set(octx, node, enc, &client.SetOptions{PrevExist: client.PrevNoExist, TTL: ttl})
	} else {
		resp, err = s.compareAnd(octx, k, previous.LastIndex, previous.LastIndex, func(mod uint64) (*client.Response, error) {
			return s.kapi.Set(octx, node, enc, &client.SetOptions{PrevIndex: mod, TTL: ttl})
		})
	}
	if err != nil {
		return false, nil, s.fail(ctx, "atomicput", k, err)
	}
	s.keepAlive(k, resp.Node, ttl, keep)
	return true, pair(k, resp.Node), nil
}

// AtomicDelete deletes key only if it is unchanged since previous.
func (s *Store) AtomicDelete(ctx context.Context, key string, previous *kvstore.KVPair) (bool, error) {
	k, err := s.normalize("atomicdelete", key)
	if err != nil {
		return false, err
	}
	if previous == nil {
		return false, kvstore.Wrap(kvstore.EtcdV2, "atomicdelete", k, kvstore.ErrPreviousNotSpecified)
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	_, err = s.compareAnd(octx, k, previous.LastIndex, previous.LastIndex, func(mod uint64) (*client.Response, error) {
		return s.kapi.Delete(octx, valueNode(k), &client.DeleteOptions{PrevIndex: mod})
	})
	if err != nil {
		return false, s.fail(ctx, "atomicdelete", k, err)
	}
	s.stopKeepAlive(k)
	s.prune(octx, dirNode(k))
	return true, nil
}

// compareAnd runs op (a compare-and-swap or compare-and-delete on the node's ModifiedIndex)
// if key's LastIndex is still last. Usually LastIndex is the ModifiedIndex, and the first try,
// on hint (the ModifiedIndex the caller believes current), decides. When a background refresh
// has moved the ModifiedIndex (the value then spells its LastIndex out), the first try fails:
// read the node, check its LastIndex, and compare on the ModifiedIndex just read, again until
// no refresh slips in between. A first try with hint == last can never succeed wrongly:
// ModifiedIndex values are unique across the store, so a node whose ModifiedIndex equals last
// was last written by the very write that gave it LastIndex last.
func (s *Store) compareAnd(ctx context.Context, k string, last, hint uint64, op func(mod uint64) (*client.Response, error)) (*client.Response, error) {
	if hint != 0 { // 0 would mean "no comparison" to v2
		resp, err := op(hint)
		if !is(err, client.ErrorCodeTestFailed) {
			return resp, err
		}
	}
	for {
		n, err := s.get(ctx, k, true)
		if err != nil {
			return nil, err
		}
		if _, cur, _ := decodeValue(n.Value, n.ModifiedIndex); cur != last {
			return nil, client.Error{Code: client.ErrorCodeTestFailed, Message: "Compare failed",
				Cause: "[" + uitoa(last) + " != " + uitoa(cur) + "]", Index: n.ModifiedIndex}
		}
		resp, err := op(n.ModifiedIndex)
		if !is(err, client.ErrorCodeTestFailed) {
			return resp, err
		}
	}
}
