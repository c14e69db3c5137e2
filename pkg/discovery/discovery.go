// Package discovery registers service endpoints in any kvstore.Store and watches them.
//
// An Entry lives at <prefix>/services/<service>/<address>:<port> as JSON (the Entry's fields),
// written with a TTL and kept alive by the store, so an endpoint whose process dies disappears
// within the store's TTL bound, while one that deregisters disappears at once. Watchers get the
// full, sorted list of a service's entries on every change.
//
// Every entry may record its Owner (for the operator: a cluster id and the Registration's UID),
// so that several writers can share one prefix and each removes only what it wrote
// (DeregisterOwned).
package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/kvop/kvop/internal/retry"
	"github.com/kvop/kvop/pkg/kvstore"
)

// Entry is one endpoint of a service.
type Entry struct {
	Service   string            `json:"service"`
	Address   string            `json:"address"`
	Port      int               `json:"port"`
	Pod       string            `json:"pod,omitempty"`
	Namespace string            `json:"namespace,omitempty"`
	Node      string            `json:"node,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Owner     string            `json:"owner,omitempty"` // who wrote it (cluster id / Registration UID)
}

// ErrInvalidEntry marks an Entry that cannot be registered, or a stored value that is not one.
var ErrInvalidEntry = errors.New("invalid discovery entry")

// Validate checks what the key layout and clients need: a service name that is one key
// segment, an address, and a port in 1..65535.
func (e Entry) Validate() error {
	switch {
	case e.Service == "" || strings.Contains(e.Service, "/") || e.Service == "." || e.Service == "..":
		return fmt.Errorf("%w: service %q must be a non-empty name without '/'", ErrInvalidEntry, e.Service)
	case e.Address == "" || strings.ContainsAny(e.Address, "/ "):
		return fmt.Errorf("%w: address %q must be a host name or IP", ErrInvalidEntry, e.Address)
	case e.Port < 1 || e.Port > 65535:
		return fmt.Errorf("%w: port %d must be in 1..65535", ErrInvalidEntry, e.Port)
	}
	return nil
}

// Endpoint returns "address:port" ("[v6]:port" for IPv6), the entry's last key segment.
func (e Entry) Endpoint() string { return net.JoinHostPort(e.Address, strconv.Itoa(e.Port)) }

// ServiceDir returns the directory holding a service's entries.
func ServiceDir(prefix, service string) string {
	return strings.Trim(prefix, "/") + "/services/" + service
}

// Key returns where e is stored below prefix.
func Key(prefix string, e Entry) string { return ServiceDir(prefix, e.Service) + "/" + e.Endpoint() }

// Decode parses a stored entry.
func Decode(value []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(value, &e); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrInvalidEntry, err)
	}
	if err := e.Validate(); err != nil {
		return Entry{}, err
	}
	if len(e.Metadata) == 0 {
		e.Metadata = nil // "metadata": {} and none are one entry (Marshal omits both)
	}
	return e, nil
}

// Registry registers and watches entries below one key prefix of a store.
type Registry struct {
	store  kvstore.Store
	prefix string
}

// NewRegistry returns a Registry for the entries below prefix ("" is allowed: <service> then
// sits at services/<service>).
func NewRegistry(store kvstore.Store, prefix string) *Registry {
	return &Registry{store: store, prefix: strings.Trim(prefix, "/")}
}

// Key returns where e is stored.
func (r *Registry) Key(e Entry) string { return Key(r.prefix, e) }

// Register writes e with ttl and keeps it alive (kvstore KeepAlive) until Deregister, the
// store's Close, or the death of this process — then it expires within the store's TTL bound.
// Registering again replaces the entry.
func (r *Registry) Register(ctx context.Context, e Entry, ttl time.Duration) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: ttl must be positive, got %s", ErrInvalidEntry, ttl)
	}
	value, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return r.store.Put(ctx, r.Key(e), value, &kvstore.WriteOptions{TTL: ttl, KeepAlive: true})
}

// Deregister deletes e's entry at once (deleting an absent entry succeeds).
func (r *Registry) Deregister(ctx context.Context, e Entry) error {
	if err := e.Validate(); err != nil {
		return err
	}
	return r.store.Delete(ctx, r.Key(e))
}

// DeregisterOwned deletes the entry at key only if its Owner is owner and it did not change
// since it was read; it reports whether it deleted. An entry that belongs to someone else — a
// pod IP reused by another cluster's registration — is left alone.
func (r *Registry) DeregisterOwned(ctx context.Context, key, owner string) (bool, error) {
	pair, err := r.store.Get(ctx, key)
	if errors.Is(err, kvstore.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	e, err := Decode(pair.Value)
	if err != nil || e.Owner != owner {
		return false, nil
	}
	ok, err := r.store.AtomicDelete(ctx, key, pair)
	if errors.Is(err, kvstore.ErrKeyNotFound) || errors.Is(err, kvstore.ErrKeyModified) {
		return false, nil
	}
	return ok, err
}

// Keyed is an entry with the key it was read from.
type Keyed struct {
	Key string
	Entry
}

// Entries returns a service's entries sorted by key (empty, not an error, when there are none).
// Values that are not entries are left out.
func (r *Registry) Entries(ctx context.Context, service string) ([]Entry, error) {
	keyed, err := r.list(ctx, ServiceDir(r.prefix, service))
	if err != nil {
		return nil, err
	}
	return entriesOf(keyed), nil
}

// All returns every entry of every service below the prefix, with its key, sorted by key.
func (r *Registry) All(ctx context.Context) ([]Keyed, error) {
	return r.list(ctx, strings.Trim(r.prefix+"/services", "/"))
}

func (r *Registry) list(ctx context.Context, dir string) ([]Keyed, error) {
	pairs, err := r.store.List(ctx, dir)
	if errors.Is(err, kvstore.ErrKeyNotFound) {
		return []Keyed{}, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeAll(pairs), nil
}

// decodeAll keeps the pairs that hold entries, in the store's (key) order.
func decodeAll(pairs []*kvstore.KVPair) []Keyed {
	out := make([]Keyed, 0, len(pairs))
	for _, p := range pairs {
		if e, err := Decode(p.Value); err == nil {
			out = append(out, Keyed{Key: p.Key, Entry: e})
		}
	}
	return out
}

func entriesOf(keyed []Keyed) []Entry {
	out := make([]Entry, len(keyed))
	for i, k := range keyed {
		out[i] = k.Entry
	}
	return out
}

// Watch sends a service's entries (sorted by key) now and after every change, until ctx is
// done. It survives store interruptions: it watches again with backoff and resends the list.
// The channel closes when ctx is done or the store is closed.
func (r *Registry) Watch(ctx context.Context, service string) <-chan []Entry {
	out := make(chan []Entry)
	go func() {
		defer close(out)
		backoff := retry.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
		for ctx.Err() == nil {
			events, err := r.store.WatchTree(ctx, ServiceDir(r.prefix, service))
			if errors.Is(err, kvstore.ErrClosed) {
				return
			}
			if err != nil {
				retry.Sleep(ctx, backoff.Next())
				continue
			}
			for pairs := range events {
				backoff.Reset()
				select {
				case out <- entriesOf(decodeAll(pairs)):
				case <-ctx.Done():
					return
				}
			}
			retry.Sleep(ctx, backoff.Next())
		}
	}()
	return out
}

// Keep registers e and holds it until ctx is done, then deregisters it: the heartbeat of a
// long-running endpoint (`kvop register`). Should the entry vanish while ctx lives — a store
// outage that outlasted the TTL, a ZooKeeper session that expired — it is written again as soon
// as the store answers. It returns nil after a clean deregistration.
func (r *Registry) Keep(ctx context.Context, e Entry, ttl time.Duration) error {
	if err := r.Register(ctx, e, ttl); err != nil {
		return err
	}
	backoff := retry.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for ctx.Err() == nil {
		if err := r.watchAndRestore(ctx, e, ttl); errors.Is(err, kvstore.ErrClosed) {
			return err
		}
		retry.Sleep(ctx, backoff.Next())
	}
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.Deregister(dctx, e)
}

// watchAndRestore watches e's key and writes e again whenever it vanishes; it returns when ctx
// is done, the watch ends, or a rewrite fails (the caller retries after a pause).
func (r *Registry) watchAndRestore(ctx context.Context, e Entry, ttl time.Duration) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := r.store.Watch(wctx, r.Key(e))
	if err != nil {
		return err
	}
	for pair := range events {
		if pair == nil && ctx.Err() == nil {
			if err := r.Register(ctx, e, ttl); err != nil {
				return err
			}
		}
	}
	return nil
}
