package kvstore

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// OpenFunc opens a store of one backend. It receives a non-nil copy of the caller's Config with
// defaults applied (ConnectionTimeout, Bucket, SessionTimeout) and at least one address.
type OpenFunc func(ctx context.Context, addrs []string, cfg *Config) (Store, error)

var (
	registryMu sync.RWMutex
	registry   = map[Backend]OpenFunc{}
)

// Register makes a backend available to New. Backends call it from init(); it panics when open
// is nil or the backend is registered twice, as both are programming errors.
func Register(backend Backend, open func(ctx context.Context, addrs []string, cfg *Config) (Store, error)) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if open == nil {
		panic(fmt.Sprintf("kvstore: Register of %q with a nil open function", backend))
	}
	if _, dup := registry[backend]; dup {
		panic(fmt.Sprintf("kvstore: Register called twice for backend %q", backend))
	}
	registry[backend] = open
}

// Backends returns the registered backends, sorted.
func Backends() []Backend {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]Backend, 0, len(registry))
	for b := range registry {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// New opens a store. addrs are "host:port" for every networked backend (the backend adds any
// scheme it needs: http, or https when cfg.TLS is set); for boltdb, addrs[0] is the file path.
// Backends register themselves (database/sql style) from their init();
// importing github.com/kvop/kvop/pkg/kvstore/all registers every backend.
func New(ctx context.Context, backend Backend, addrs []string, cfg *Config) (Store, error) {
	registryMu.RLock()
	open, ok := registry[backend]
	registryMu.RUnlock()
	if !ok {
		return nil, &Error{Backend: backend, Op: "open", Err: fmt.Errorf(
			"%w: %q is not registered (import _ \"github.com/kvop/kvop/pkg/kvstore/%s\" or .../kvstore/all; registered: %v)",
			ErrBackendNotSupported, backend, backend, Backends())}
	}
	if len(addrs) == 0 || addrs[0] == "" {
		return nil, &Error{Backend: backend, Op: "open", Err: fmt.Errorf("no address given")}
	}
	s, err := open(ctx, addrs, cfg.withDefaults())
	if err != nil {
		return nil, Wrap(backend, "open", "", err)
	}
	return s, nil
}
