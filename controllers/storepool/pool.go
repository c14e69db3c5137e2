// Package storepool keeps one open kvstore.Store per KVEndpoint, shared by every controller: the
// KVEndpoint controller opens, replaces (when the spec or a referenced Secret changes) and closes
// them; the Registration and LeaderLease controllers borrow them. Subscribers hear of every
// change so that they re-assert what they wrote through the new connection.
package storepool

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/pkg/kvstore"
)

// Store is an open connection of one KVEndpoint.
type Store struct {
	kvstore.Store // instrumented: every call is counted and timed by backend and operation

	Backend kvstore.Backend
	Prefix  string // the endpoint's spec.prefix, normalised ("" allowed)
	// Generation grows each time the endpoint's connection is replaced; what was written
	// through an older generation (keep-alives, campaigns) must be written again.
	Generation uint64

	hash string        // of everything the connection was built from; a change means replace
	raw  kvstore.Store // the backend's store, unwrapped (for kvstore.Abandon)
	// stale: the connection failed; the next Ensure replaces it (guarded by Pool.mu).
	stale bool

	// written records, per key, the value this connection wrote with KeepAlive, so that a
	// controller rewrites an entry only when it changed or vanished — not on every reconcile
	// (which would renew leases and wake every watcher).
	mu      sync.Mutex
	written map[string]string
}

// Written reports whether this connection wrote value at key (and keeps it alive).
func (s *Store) Written(key, value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.written[key]
	return ok && v == value
}

// MarkWritten records that this connection wrote value at key ("" forgets the key).
func (s *Store) MarkWritten(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if value == "" {
		delete(s.written, key)
		return
	}
	s.written[key] = value
}

// Key joins the endpoint prefix and key.
func (s *Store) Key(key string) string {
	if s.Prefix == "" {
		return key
	}
	return s.Prefix + "/" + key
}

// Pool holds the open stores.
type Pool struct {
	mu          sync.Mutex
	stores      map[types.NamespacedName]*Store
	generation  uint64
	subscribers []chan event.GenericEvent
	holds       sync.WaitGroup // see Hold
}

// holdLimit bounds how long a stopping pool waits for its holders (see Hold).
const holdLimit = 10 * time.Second

// New returns an empty pool.
func New() *Pool { return &Pool{stores: map[types.NamespacedName]*Store{}} }

// Get returns the open store of a KVEndpoint, or nil when it has none (not created, not
// reachable yet, or deleted).
func (p *Pool) Get(endpoint types.NamespacedName) *Store {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stores[endpoint]
}

// Ensure returns the endpoint's store, opening it with open when there is none or when hash (a
// digest of the spec and Secrets it is built from) differs from the open one's. A replaced store
// is abandoned after the new one is in place (kvstore.Abandon: its TTL keys live on until the
// controllers have rewritten them through the new one). When open fails the old store (if any)
// is kept: a typo in a new spec must not cut a working connection.
func (p *Pool) Ensure(ctx context.Context, endpoint types.NamespacedName, backend kvstore.Backend, prefix, hash string,
	open func(ctx context.Context) (kvstore.Store, error)) (s *Store, opened bool, err error) {
	p.mu.Lock()
	cur := p.stores[endpoint]
	keep := cur != nil && cur.hash == hash && !cur.stale
	p.mu.Unlock()
	if keep {
		return cur, false, nil
	}
	raw, err := open(ctx)
	if err != nil {
		return nil, false, err
	}
	p.mu.Lock()
	p.generation++
	s = &Store{Store: Instrument(raw, backend), Backend: backend, Prefix: prefix, Generation: p.generation,
		hash: hash, raw: raw, written: map[string]string{}}
	old := p.stores[endpoint]
	p.stores[endpoint] = s
	p.mu.Unlock()
	if old != nil {
		_ = kvstore.Abandon(old.raw)
	}
	p.notify(endpoint)
	return s, true, nil
}

// MarkStale has the next Ensure replace s, the endpoint's store, although nothing it is built
// from changed: its connection failed, and may not come back by itself or not come back right.
// A ZooKeeper client refuses to join a server that lost its data (its transaction id went back)
// and retries forever; an etcd watch resumes from its last revision, which a server that lost
// its data reaches only much later, so a follower would miss every change until then. A new
// connection has neither problem. Until one opens, s stays in use.
func (p *Pool) MarkStale(endpoint types.NamespacedName, s *Store) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stores[endpoint] == s {
		s.stale = true
	}
}

// Remove closes and forgets the endpoint's store (the endpoint was deleted or its spec can no
// longer be used). Keep-alives stop, so what it wrote expires within its TTL.
func (p *Pool) Remove(endpoint types.NamespacedName) {
	p.mu.Lock()
	old := p.stores[endpoint]
	delete(p.stores, endpoint)
	p.mu.Unlock()
	if old != nil {
		_ = old.Close()
		p.notify(endpoint)
	}
}

// Subscribe returns a channel that gets the KVEndpoint of every store that was opened,
// replaced or removed. Use it with source.Channel; subscribe before the manager starts.
func (p *Pool) Subscribe() <-chan event.GenericEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := make(chan event.GenericEvent, 1024)
	p.subscribers = append(p.subscribers, ch)
	return ch
}

func (p *Pool) notify(endpoint types.NamespacedName) {
	p.mu.Lock()
	subs := append([]chan event.GenericEvent(nil), p.subscribers...)
	p.mu.Unlock()
	obj := &kvopv1.KVEndpoint{}
	obj.Namespace, obj.Name = endpoint.Namespace, endpoint.Name
	for _, ch := range subs {
		ch <- event.GenericEvent{Object: obj}
	}
}

// Close lets go of every store when the manager stops. The stores are abandoned, not closed
// (kvstore.Abandon): locks are released, but what the stores keep alive — every Registration's
// entries — lives on for its TTL, so that the next manager (a restart, a rolling update, a
// leader-election handover) rewrites the entries before they could expire. Closing would end a
// ZooKeeper session and delete them all at once.
func (p *Pool) Close() {
	p.mu.Lock()
	stores := p.stores
	p.stores = map[types.NamespacedName]*Store{}
	p.mu.Unlock()
	for _, s := range stores {
		_ = kvstore.Abandon(s.raw)
	}
}

// Hold keeps a stopping pool from letting go of its stores until release is called (or
// holdLimit passed); call it before the manager starts. The elections hold it: their campaigns
// end through open stores. Should the pool let go of a store first — which releases the
// leader's lock — a candidate of the same process that is still waiting could win the lock
// a moment later, never to release it, and the lease would stay with that pod for a whole TTL
// after a manager handover.
func (p *Pool) Hold() (release func()) {
	p.holds.Add(1)
	var once sync.Once
	return func() { once.Do(p.holds.Done) }
}

// Start implements manager.Runnable: the pool lives as long as the manager and lets go of its
// stores when the manager stops, once its holders are done with them.
func (p *Pool) Start(ctx context.Context) error {
	<-ctx.Done()
	released := make(chan struct{})
	go func() {
		p.holds.Wait()
		close(released)
	}()
	select {
	case <-released:
	case <-time.After(holdLimit):
	}
	p.Close()
	return nil
}
