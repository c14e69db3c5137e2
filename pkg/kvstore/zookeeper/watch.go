package zookeeper

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Watch sends the pair at key (nil when absent), then the pair after every change. One
// subscription, one armed watch at a time: GetW while the node exists, ExistsW while it does not.
func (s *Store) Watch(ctx context.Context, key string) (<-chan *kvstore.KVPair, error) {
	k, p, err := s.normalize("watch", key)
	if err != nil {
		return nil, err
	}
	ch := make(chan *kvstore.KVPair)
	sb := s.hub.add(func(path string) bool { return path == p })
	if !s.spawn(func() { s.watchKey(ctx, k, p, sb, ch) }) {
		s.hub.remove(sb)
		return nil, s.fail("watch", k, kvstore.ErrClosed)
	}
	return ch, nil
}

func (s *Store) watchKey(ctx context.Context, k, p string, sb *sub, ch chan<- *kvstore.KVPair) {
	defer close(ch)
	defer s.hub.remove(sb)
	var (
		armed bool
		cur   *kvstore.KVPair
		last  *kvstore.KVPair
		sent  bool
	)
	for {
		fired, resync := sb.take()
		if resync || fired[p] != 0 {
			armed = false
		}
		var err error
		for !armed && err == nil {
			var data []byte
			var stat *zk.Stat
			data, stat, err = s.zgetW(ctx, p)
			switch {
			case err == nil:
				cur, armed = pairOf(k, data, stat), true
			case errors.Is(err, zk.ErrNoNode):
				var exists bool
				exists, _, err = s.zexistsW(ctx, p)
				if err == nil && !exists {
					cur, armed = nil, true
				} // created meanwhile: read it
			}
		}
		if err == nil && (!sent || !samePair(cur, last)) {
			select {
			case ch <- cur:
				last, sent = cur, true
			case <-ctx.Done():
				return
			case <-s.closed:
				return
			}
			continue // something may have fired while the receiver was busy
		}
		if !s.await(ctx, sb, err) {
			return
		}
	}
}

// await waits for the next event of sb; after an error, at most a short back-off. It returns
// false when the watcher must stop.
func (s *Store) await(ctx context.Context, sb *sub, err error) bool {
	var retry <-chan time.Time
	if err != nil {
		if ctx.Err() != nil || s.isClosed() {
			return false
		}
		t := time.NewTimer(250 * time.Millisecond)
		defer t.Stop()
		retry = t.C
	}
	select {
	case <-sb.wake:
	case <-retry:
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
	return true
}

func samePair(a, b *kvstore.KVPair) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.LastIndex == b.LastIndex
}

// WatchTree sends the full List of directory, then the full list after every change below it,
// including value changes of keys at any depth: it keeps a data watch on every node below the
// directory and a child watch on every node that may have children (ZooKeeper 3.6's recursive
// watches are not available in the client library).
func (s *Store) WatchTree(ctx context.Context, directory string) (<-chan []*kvstore.KVPair, error) {
	dir, p, err := s.normalize("watchtree", directory)
	if err != nil {
		return nil, err
	}
	ch := make(chan []*kvstore.KVPair)
	sb := s.hub.add(func(path string) bool { return path == p || strings.HasPrefix(path, p+"/") })
	t := &tree{s: s, dir: dir, root: p, nodes: map[string]*treeNode{p: {}}}
	if !s.spawn(func() { t.run(ctx, sb, ch) }) {
		s.hub.remove(sb)
		return nil, s.fail("watchtree", dir, kvstore.ErrClosed)
	}
	return ch, nil
}

// tree mirrors the subtree below root, with the state of the watches armed on each node.
type tree struct {
	s     *Store
	dir   string // normalised directory
	root  string // its znode path
	nodes map[string]*treeNode
}

type treeNode struct {
	dataArmed, childArmed bool
	absent                bool // root only: the directory node does not exist
	pair                  *kvstore.KVPair
	kids                  []string // child znode paths
}

func (t *tree) run(ctx context.Context, sb *sub, ch chan<- []*kvstore.KVPair) {
	defer close(ch)
	defer t.s.hub.remove(sb)
	var last []*kvstore.KVPair
	sent := false
	for {
		fired, resync := sb.take()
		for path, n := range t.nodes {
			bits := fired[path]
			if resync {
				bits = firedData | firedChild
			}
			n.dataArmed = n.dataArmed && bits&firedData == 0
			n.childArmed = n.childArmed && bits&firedChild == 0
		}
		err := t.refresh(ctx)
		if err == nil {
			list := t.list()
			if !sent || !sameList(list, last) {
				select {
				case ch <- list:
					last, sent = list, true
				case <-ctx.Done():
					return
				case <-t.s.closed:
					return
				}
				continue
			}
		}
		if !t.s.await(ctx, sb, err) {
			return
		}
	}
}

// refresh arms every watch that is not armed, reading what it watches, until the mirror is
// complete. Each round sends its requests in parallel (the connection pipelines them).
func (t *tree) refresh(ctx context.Context) error {
	for {
		var todo []string
		for path, n := range t.nodes {
			if !n.dataArmed || (!n.childArmed && !n.absent) {
				todo = append(todo, path)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		results := make([]treeRead, len(todo))
		sem := make(chan struct{}, walkParallelism)
		var wg sync.WaitGroup
		for i, path := range todo {
			n := t.nodes[path]
			wg.Add(1)
			sem <- struct{}{}
			// A directory node that has just appeared needs its child watch as well.
			data, kids := !n.dataArmed, !n.childArmed || (path == t.root && n.absent)
			go func() {
				defer func() { <-sem; wg.Done() }()
				results[i] = t.read(ctx, path, data, kids)
			}()
		}
		wg.Wait()
		for i, path := range todo {
			if err := t.apply(path, results[i]); err != nil {
				return err
			}
		}
	}
}

// treeRead is what one node's requests returned.
type treeRead struct {
	readData, readKids bool
	gone               bool // the node does not exist
	pair               *kvstore.KVPair
	kids               []string
	err                error
}

func (t *tree) read(ctx context.Context, path string, data, kids bool) treeRead {
	r := treeRead{}
	if data {
		r.readData = true
		if path == t.root {
			// ExistsW also fires when the directory node is created.
			ok, _, err := t.s.zexistsW(ctx, path)
			if err != nil {
				r.err = err
				return r
			}
			r.gone = !ok
		} else {
			d, stat, err := t.s.zgetW(ctx, path)
			if errors.Is(err, zk.ErrNoNode) {
				r.gone = true
				return r
			}
			if err != nil {
				r.err = err
				return r
			}
			r.pair = pairOf(keyBelow(t.dir, t.root, path), d, stat)
		}
	}
	if kids && !r.gone {
		r.readKids = true
		names, err := t.s.zchildrenW(ctx, path)
		if errors.Is(err, zk.ErrNoNode) {
			r.gone = true
			return r
		}
		if err != nil {
			r.err = err
			return r
		}
		r.kids = childPaths(path, names)
	}
	return r
}

func (t *tree) apply(path string, r treeRead) error {
	n := t.nodes[path]
	if n == nil {
		return nil // removed with an ancestor in this round
	}
	if r.err != nil {
		return r.err
	}
	if r.gone {
		if path == t.root {
			t.dropBelow(path)
			// A watch is armed only if ExistsW answered "absent"; after a deletion seen by
			// ChildrenW, look again.
			*n = treeNode{absent: true, dataArmed: r.readData, childArmed: true}
			return nil
		}
		t.drop(path)
		return nil
	}
	if r.readData {
		n.dataArmed = true
		n.pair = r.pair
		if path == t.root {
			n.absent = false
		}
	}
	if r.readKids {
		n.childArmed = true
		have := make(map[string]bool, len(r.kids))
		for _, k := range r.kids {
			have[k] = true
			if t.nodes[k] == nil {
				t.nodes[k] = &treeNode{}
			}
		}
		for _, k := range n.kids {
			if !have[k] {
				t.drop(k)
			}
		}
		n.kids = r.kids
	}
	return nil
}

// drop forgets path and everything below it; their watches fire once more, unheeded.
func (t *tree) drop(path string) {
	t.dropBelow(path)
	delete(t.nodes, path)
}

func (t *tree) dropBelow(path string) {
	for p := range t.nodes {
		if strings.HasPrefix(p, path+"/") {
			delete(t.nodes, p)
		}
	}
}

func (t *tree) list() []*kvstore.KVPair {
	out := []*kvstore.KVPair{}
	for path, n := range t.nodes {
		if path != t.root && n.pair != nil {
			out = append(out, n.pair)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func sameList(a, b []*kvstore.KVPair) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].LastIndex != b[i].LastIndex {
			return false
		}
	}
	return true
}
