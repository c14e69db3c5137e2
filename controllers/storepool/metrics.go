package storepool

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kvop/kvop/pkg/kvstore"
)

var (
	storeRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kvop_store_requests_total",
		Help: "Requests to key/value stores by backend, operation and result (ok, not_found, error).",
	}, []string{"backend", "operation", "result"})
	storeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kvop_store_request_duration_seconds",
		Help:    "Latency of key/value store requests by backend and operation.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"backend", "operation"})
)

func init() {
	metrics.Registry.MustRegister(storeRequests, storeLatency)
}

// Instrument wraps s so that every call is counted in kvop_store_requests_total and timed in
// kvop_store_request_duration_seconds (Watch, WatchTree and Lock are timed until they return,
// i.e. until the watch is set up or the lock is taken).
func Instrument(s kvstore.Store, backend kvstore.Backend) kvstore.Store {
	return &instrumented{Store: s, backend: string(backend)}
}

type instrumented struct {
	kvstore.Store
	backend string
}

func (i *instrumented) observe(op string, start time.Time, err error) {
	result := "ok"
	switch {
	case errors.Is(err, kvstore.ErrKeyNotFound):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	storeRequests.WithLabelValues(i.backend, op, result).Inc()
	storeLatency.WithLabelValues(i.backend, op).Observe(time.Since(start).Seconds())
}

func (i *instrumented) Put(ctx context.Context, key string, value []byte, opts *kvstore.WriteOptions) (err error) {
	defer func(start time.Time) { i.observe("put", start, err) }(time.Now())
	return i.Store.Put(ctx, key, value, opts)
}

func (i *instrumented) Get(ctx context.Context, key string) (p *kvstore.KVPair, err error) {
	defer func(start time.Time) { i.observe("get", start, err) }(time.Now())
	return i.Store.Get(ctx, key)
}

func (i *instrumented) Delete(ctx context.Context, key string) (err error) {
	defer func(start time.Time) { i.observe("delete", start, err) }(time.Now())
	return i.Store.Delete(ctx, key)
}

func (i *instrumented) Exists(ctx context.Context, key string) (ok bool, err error) {
	defer func(start time.Time) { i.observe("exists", start, err) }(time.Now())
	return i.Store.Exists(ctx, key)
}

func (i *instrumented) Watch(ctx context.Context, key string) (ch <-chan *kvstore.KVPair, err error) {
	defer func(start time.Time) { i.observe("watch", start, err) }(time.Now())
	return i.Store.Watch(ctx, key)
}

func (i *instrumented) WatchTree(ctx context.Context, dir string) (ch <-chan []*kvstore.KVPair, err error) {
	defer func(start time.Time) { i.observe("watch_tree", start, err) }(time.Now())
	return i.Store.WatchTree(ctx, dir)
}

func (i *instrumented) List(ctx context.Context, dir string) (pairs []*kvstore.KVPair, err error) {
	defer func(start time.Time) { i.observe("list", start, err) }(time.Now())
	return i.Store.List(ctx, dir)
}

func (i *instrumented) DeleteTree(ctx context.Context, dir string) (err error) {
	defer func(start time.Time) { i.observe("delete_tree", start, err) }(time.Now())
	return i.Store.DeleteTree(ctx, dir)
}

func (i *instrumented) AtomicPut(ctx context.Context, key string, value []byte, previous *kvstore.KVPair, opts *kvstore.WriteOptions) (ok bool, p *kvstore.KVPair, err error) {
	defer func(start time.Time) { i.observe("atomic_put", start, err) }(time.Now())
	return i.Store.AtomicPut(ctx, key, value, previous, opts)
}

func (i *instrumented) AtomicDelete(ctx context.Context, key string, previous *kvstore.KVPair) (ok bool, err error) {
	defer func(start time.Time) { i.observe("atomic_delete", start, err) }(time.Now())
	return i.Store.AtomicDelete(ctx, key, previous)
}
