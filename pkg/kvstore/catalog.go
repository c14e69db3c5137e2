package kvstore

import (
	"context"
	"time"
)

// CatalogService is one instance of a service in a backend's native service catalog.
type CatalogService struct {
	ID      string            // unique on the agent it is registered with
	Name    string            // the service name clients look up
	Address string            // the instance's IP or host name
	Port    int               // 1..65535
	Tags    []string          // optional
	Meta    map[string]string // optional
}

// CatalogCheck configures the health check that keeps a catalog instance alive.
type CatalogCheck struct {
	// TTL: the check turns critical when the store has not refreshed it for this long (the
	// store refreshes it well within, until DeregisterService, Close or the process ends).
	TTL time.Duration
	// DeregisterAfter: the catalog removes the instance once its check has been critical this
	// long, so the instances of a process that died go away on their own.
	DeregisterAfter time.Duration
}

// Catalog is implemented by stores whose backend has a service catalog of its own (Consul):
// instances registered there are found by the backend's own clients (its catalog and health
// APIs, its DNS interface), not only by kvop. Like a KeepAlive key, an instance lives while the
// store refreshes its check and expires on its own after the process (or Close) ends.
type Catalog interface {
	// RegisterService registers (or replaces) svc with a passing TTL check and keeps the check
	// passing until DeregisterService or Close.
	RegisterService(ctx context.Context, svc CatalogService, check CatalogCheck) error
	// DeregisterService removes the instance with this ID (removing an absent one succeeds).
	DeregisterService(ctx context.Context, id string) error
	// Services returns the instances named name, of any writer, sorted by ID.
	Services(ctx context.Context, name string) ([]CatalogService, error)
}
