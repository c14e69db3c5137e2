package zookeeper

import (
	"sync"

	"github.com/go-zookeeper/zk"
)

// ZooKeeper watches fire once. Rather than keep the one-shot channel of every watch it arms, a
// watcher subscribes here to the paths it cares about: the connection's event callback marks
// which of its watches fired (so exactly those are re-armed, and no duplicate registrations
// pile up in the client library) and wakes it. Session changes mark everything for re-reading.

// Which kind of watch on a path an event consumed.
const (
	firedData  uint8 = 1 << iota // GetW or ExistsW: created, changed, deleted
	firedChild                   // ChildrenW: a child was added or removed
)

type hub struct {
	mu   sync.Mutex
	subs map[*sub]struct{}
}

type sub struct {
	match func(path string) bool

	mu     sync.Mutex
	fired  map[string]uint8
	resync bool
	wake   chan struct{} // capacity 1: a pending wake-up is never lost, never blocks
}

func (h *hub) init() { h.subs = map[*sub]struct{}{} }

func (h *hub) add(match func(path string) bool) *sub {
	sb := &sub{match: match, fired: map[string]uint8{}, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	h.subs[sb] = struct{}{}
	h.mu.Unlock()
	return sb
}

func (h *hub) remove(sb *sub) {
	h.mu.Lock()
	delete(h.subs, sb)
	h.mu.Unlock()
}

// dispatch routes a node event to the subscribers of its path.
func (h *hub) dispatch(ev zk.Event) {
	var bits uint8
	switch ev.Type {
	case zk.EventNodeCreated, zk.EventNodeDataChanged:
		bits = firedData
	case zk.EventNodeChildrenChanged:
		bits = firedChild
	case zk.EventNodeDeleted:
		bits = firedData | firedChild
	default:
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for sb := range h.subs {
		if sb.match(ev.Path) {
			sb.mu.Lock()
			sb.fired[ev.Path] |= bits
			sb.mu.Unlock()
			sb.notify()
		}
	}
}

// resyncAll tells every subscriber that its watches may be gone (session lost, reconnected).
func (h *hub) resyncAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sb := range h.subs {
		sb.mu.Lock()
		sb.resync = true
		sb.mu.Unlock()
		sb.notify()
	}
}

func (sb *sub) notify() {
	select {
	case sb.wake <- struct{}{}:
	default:
	}
}

// take returns and clears what fired since the last call.
func (sb *sub) take() (map[string]uint8, bool) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	fired, resync := sb.fired, sb.resync
	sb.fired, sb.resync = map[string]uint8{}, false
	return fired, resync
}
