package skydns

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Store reads and writes absolute etcd keys (such as /skydns/...) with the kvstore semantics the
// writers above it rely on: LastIndex is the key's ModRevision, TTL writes are kept alive until
// the client is closed, then expire.
type Store struct {
	cli     *clientv3.Client
	timeout time.Duration // bounds each request: the client waits for a connection forever otherwise

	mu sync.Mutex
	// leases are shared by every key written with the same TTL (whole seconds): one keep-alive
	// per TTL instead of one per record. A lease that could not be kept alive is forgotten, so
	// the next write grants a new one; its keys are gone and get written again by their owner.
	leases map[int64]clientv3.LeaseID
}

// NewStore returns a Store on cli whose requests each take at most timeout. Its keep-alives end
// when cli is closed.
func NewStore(cli *clientv3.Client, timeout time.Duration) *Store {
	if timeout <= 0 {
		timeout = kvstore.DefaultConnectionTimeout
	}
	return &Store{cli: cli, timeout: timeout, leases: map[int64]clientv3.LeaseID{}}
}

func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// Put writes value at key on a lease of ttl that this Store keeps alive.
func (s *Store) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	for attempt := 0; ; attempt++ {
		id, err := s.lease(ctx, ttl)
		if err != nil {
			return err
		}
		octx, cancel := s.op(ctx)
		_, err = s.cli.Put(octx, key, string(value), clientv3.WithLease(id))
		cancel()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0 {
			s.forget(id) // expired meanwhile (an outage longer than its TTL): take a new one
			continue
		}
		return err
	}
}

func (s *Store) lease(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	secs := max(int64(math.Ceil(ttl.Seconds())), 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.leases[secs]; ok {
		return id, nil
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	grant, err := s.cli.Grant(octx, secs)
	if err != nil {
		return 0, err
	}
	// Not bound to ctx (one reconcile): the lease lives as long as the client.
	alive, err := s.cli.KeepAlive(context.WithoutCancel(ctx), grant.ID)
	if err != nil {
		return 0, err
	}
	s.leases[secs] = grant.ID
	go func() {
		for range alive {
		}
		// The channel closes when the lease expired or was revoked, or the client closed.
		s.forget(grant.ID)
	}()
	return grant.ID, nil
}

func (s *Store) forget(id clientv3.LeaseID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for secs, l := range s.leases {
		if l == id {
			delete(s.leases, secs)
		}
	}
}

// Get returns the pair at key, or kvstore.ErrKeyNotFound.
func (s *Store) Get(ctx context.Context, key string) (*kvstore.KVPair, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, kvstore.ErrKeyNotFound
	}
	kv := resp.Kvs[0]
	return &kvstore.KVPair{Key: string(kv.Key), Value: kv.Value, LastIndex: uint64(kv.ModRevision)}, nil
}

// List returns every key below dir, sorted (empty when there is none).
func (s *Store) List(ctx context.Context, dir string) ([]*kvstore.KVPair, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, strings.TrimSuffix(dir, "/")+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	out := make([]*kvstore.KVPair, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, &kvstore.KVPair{Key: string(kv.Key), Value: kv.Value, LastIndex: uint64(kv.ModRevision)})
	}
	return out, nil
}

// AtomicDelete deletes key only if its ModRevision is still previous.LastIndex.
func (s *Store) AtomicDelete(ctx context.Context, key string, previous *kvstore.KVPair) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", int64(previous.LastIndex))).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}
