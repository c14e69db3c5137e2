package zookeeper

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"

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

// walkParallelism bounds the requests walk has in flight; the connection pipelines them.
const walkParallelism = 32

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
		errs := make([]error, len(level))
		sem := make(chan struct{}, walkParallelism)
		var wg sync.WaitGroup
		for i, p := range level {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				n := node{path: p}
				expand := true
				if withData {
					n.data, n.stat, errs[i] = s.zget(ctx, p)
					expand = errs[i] == nil && n.stat.NumChildren > 0
				}
				if expand {
					var kids []string
					kids, errs[i] = s.zchildren(ctx, p)
					next[i] = childPaths(p, kids)
				}
				found[i] = n
			}()
		}
		wg.Wait()
		level = level[:0:0]
		for i := range found {
			if errors.Is(errs[i], zk.ErrNoNode) {
				continue
			}
			if errs[i] != nil {
				return nil, errs[i]
			}
			out = append(out, found[i])
			level = append(level, next[i]...)
		}
	}
	return out, nil
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
