package boltdb

import (
	"sync"

	"github.com/kvop/kvop/pkg/kvstore"
)

// broker tells in-process watchers that a key changed. It carries no data: a subscriber
// re-reads what it watches after a notification, so a notification may be merged with the
// next one (notify has one slot) without ever losing the latest state.
type broker struct {
	mu   sync.RWMutex
	subs map[string]map[*subscription]struct{} // by bucket
}

// subscription is one watcher of a key (or, with tree, of every key strictly below it).
type subscription struct {
	bucket string
	key    string
	tree   bool
	notify chan struct{} // one slot: "something changed since you last looked"
}

func (b *broker) init() {
	b.subs = map[string]map[*subscription]struct{}{}
}

func (b *broker) subscribe(bucket, key string, tree bool) *subscription {
	s := &subscription{bucket: bucket, key: key, tree: tree, notify: make(chan struct{}, 1)}
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.subs[bucket]
	if m == nil {
		m = map[*subscription]struct{}{}
		b.subs[bucket] = m
	}
	m[s] = struct{}{}
	return s
}

func (b *broker) unsubscribe(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs[s.bucket], s)
	if len(b.subs[s.bucket]) == 0 {
		delete(b.subs, s.bucket)
	}
}

// publish notifies the subscribers of the changed keys. It is called after the change is
// committed, so a subscriber that re-reads sees it.
func (b *broker) publish(bucket string, keys ...string) {
	if len(keys) == 0 {
		return
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs[bucket] {
		for _, k := range keys {
			if (!s.tree && k == s.key) || (s.tree && kvstore.IsBelow(k, s.key)) {
				select {
				case s.notify <- struct{}{}:
				default: // already pending
				}
				break
			}
		}
	}
}
