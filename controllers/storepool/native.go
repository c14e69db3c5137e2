package storepool

import "github.com/kvop/kvop/pkg/kvstore"

// Native returns the backend's own store under the instrumentation, for the optional
// capabilities a backend implements beyond kvstore.Store (kvstore.Catalog, the etcd client,
// ZooKeeper's verbatim writes): the instrumenting wrapper hides them. Calls through it are not
// counted in the store metrics.
func (s *Store) Native() kvstore.Store { return s.raw }
