package zookeeper

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Get returns the pair at key; an implicit parent is no key.
func (s *Store) Get(ctx context.Context, key string) (*kvstore.KVPair, error) {
	k, p, err := s.normalize("get", key)
	if err != nil {
		return nil, err
	}
	data, stat, err := s.zget(ctx, p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, s.fail("get", k, kvstore.ErrKeyNotFound)
	}
	if err != nil {
		return nil, s.fail("get", k, err)
	}
	pair := pairOf(k, data, stat)
	if pair == nil {
		return nil, s.fail("get", k, kvstore.ErrKeyNotFound)
	}
	return pair, nil
}

// Exists reports whether key holds a value (an implicit parent does not).
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	_, err := s.Get(ctx, key)
	if errors.Is(err, kvstore.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		var e *kvstore.Error
		if errors.As(err, &e) {
			e.Op = "exists"
		}
		return false, err
	}
	return true, nil
}

// List returns every key below directory at any depth, sorted.
func (s *Store) List(ctx context.Context, directory string) ([]*kvstore.KVPair, error) {
	dir, p, err := s.normalize("list", directory)
	if err != nil {
		return nil, err
	}
	nodes, err := s.walk(ctx, p, true)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, s.fail("list", dir, kvstore.ErrKeyNotFound)
	}
	if err != nil {
		return nil, s.fail("list", dir, err)
	}
	var out []*kvstore.KVPair
	for _, n := range nodes {
		if pair := pairOf(keyBelow(dir, p, n.path), n.data, n.stat); pair != nil {
			out = append(out, pair)
		}
	}
	if len(out) == 0 {
		return nil, s.fail("list", dir, kvstore.ErrKeyNotFound)
	}
	sortPairs(out)
	return out, nil
}

// keyBelow is the user key of the znode at path below the directory dir stored at root.
func keyBelow(dir, root, path string) string { return dir + strings.TrimPrefix(path, root) }

func sortPairs(pairs []*kvstore.KVPair) {
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].Key < pairs[j].Key })
}

// node is one znode found by walk.
type node struct {
	path string
	data []byte
	stat *zk.Stat
}

// walkParallelism bounds the requests walk has in flight. The connection pipelines them (one
// TCP stream, answers in order), so a level of up to this many nodes costs about one round
// trip; 32 made a 1,000-key List ~30 round trips deep. Each request in flight is one goroutine
// blocked in the client library, so the bound also caps walk's goroutines.
const walkParallelism = 1024

// walk returns every znode strictly below root, parents before their children. With data it
// reads each node (one request per node, plus one per node that has children); without, it only
// lists children. ErrNoNode when root does not exist. Nodes that vanish meanwhile are skipped.
func (s *Store) walk(ctx context.Context, root string, withData bool) ([]node, error) {
	kids, err := s.zchildren(ctx, root)
	if err != nil {
		return nil, err
	}
	var out []node
	level := childPaths(root, kids)
	for len(level) > 0 {
		found := make([]node, len(level))
		next := make([][]string, len(level))
		err := s.pipeline(ctx, len(level), func(i int) error {
			n := node{path: level[i]}
			var err error
			expand := true
			if withData {
				n.data, n.stat, err = s.conn.Get(n.path)
				expand = err == nil && n.stat.NumChildren > 0
			}
			if expand {
				var kids []string
				kids, _, err = s.conn.Children(n.path)
				next[i] = childPaths(n.path, kids)
			}
			if errors.Is(err, zk.ErrNoNode) {
				return nil // vanished meanwhile: skipped
			}
			if err == nil {
				found[i] = n
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		level = level[:0:0]
		for i := range found {
			if found[i].path == "" {
				continue
			}
			out = append(out, found[i])
			level = append(level, next[i]...)
		}
	}
	return out, nil
}

// pipeline runs fn(0) … fn(n-1), which make blocking requests on the connection, with up to
// walkParallelism of them in flight, and returns the first error. It is call for many
// requests: it gives up after Close, when ctx ends, or when no request has been answered for
// the request timeout, and then leaves the remaining calls to finish in the background (the
// client library has no contexts); what they write is never read again. The requests run in
// a few workers rather than one goroutine each (plus one per request to bound it, as call
// does).
func (s *Store) pipeline(ctx context.Context, n int, fn func(i int) error) error {
	if s.isClosed() {
		return kvstore.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	if err := s.awaitReady(ctx, timer.C); err != nil {
		return err
	}
	var next atomic.Int64
	results := make(chan error, n) // never blocks a worker that is abandoned
	for range min(n, walkParallelism) {
		go func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				results <- fn(i)
			}
		}()
	}
	for answered := 0; answered < n; answered++ {
		select {
		case err := <-results:
			if err != nil {
				next.Store(int64(n)) // start nothing more
				if s.isClosed() {
					return kvstore.ErrClosed
				}
				return err
			}
			timer.Reset(s.timeout)
		case <-ctx.Done():
			next.Store(int64(n))
			return ctx.Err()
		case <-timer.C:
			next.Store(int64(n))
			return errTimeout
		case <-s.closed:
			next.Store(int64(n))
			return kvstore.ErrClosed
		}
	}
	return nil
}

func childPaths(parent string, kids []string) []string {
	out := make([]string, len(kids))
	for i, k := range kids {
		if parent == "/" {
			out[i] = "/" + k
		} else {
			out[i] = parent + "/" + k
		}
	}
	return out
}
