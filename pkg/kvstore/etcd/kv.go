package etcd

import (
	"context"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Keys are stored under their normalised form, so "a/b" is the etcd key "a/b", and a directory
// "a" is the key range with prefix "a/": the key "a" itself is outside it, and a path that is
// only a parent of keys is simply not a key.

// pair converts an etcd key-value. LastIndex is the ModRevision: the store-wide revision of
// the key's last change, which grows with every write and never repeats, even after a delete.
func pair(kv *mvccpb.KeyValue) *kvstore.KVPair {
	p := pairValue(kv)
	return &p
}

func pairValue(kv *mvccpb.KeyValue) kvstore.KVPair {
	v := kv.Value
	if v == nil {
		v = []byte{} // an empty value is a value, not an absent one
	}
	return kvstore.KVPair{Key: string(kv.Key), Value: v, LastIndex: uint64(kv.ModRevision)}
}

func dirPrefix(dir string) string { return dir + "/" }

// Put writes value at key; with opts.TTL the key lives on a lease (see leases.go).
func (s *Store) Put(ctx context.Context, key string, value []byte, opts *kvstore.WriteOptions) error {
	k, err := s.normalize("put", key)
	if err != nil {
		return err
	}
	var lease clientv3.LeaseID
	keep := false
	if opts != nil && opts.TTL > 0 {
		keep = opts.KeepAlive
		if lease, err = s.grant(ctx, opts.TTL, keep); err != nil {
			return s.fail(ctx, "put", k, err)
		}
	}
	ops := s.writeOpts()
	if lease != 0 {
		ops = append(ops, clientv3.WithLease(lease))
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Put(octx, k, string(value), ops...)
	if err != nil {
		if keep {
			s.unref(lease)
		}
		return s.fail(ctx, "put", k, err)
	}
	s.released(resp.PrevKv)
	return nil
}

// Get returns the pair at key, or ErrKeyNotFound.
func (s *Store) Get(ctx context.Context, key string) (*kvstore.KVPair, error) {
	k, err := s.normalize("get", key)
	if err != nil {
		return nil, err
	}
	p, _, err := s.get(ctx, k)
	if err != nil {
		return nil, s.fail(ctx, "get", k, err)
	}
	if p == nil {
		return nil, kvstore.Wrap(kvstore.Etcd, "get", k, kvstore.ErrKeyNotFound)
	}
	return p, nil
}

// get reads a normalised key: its pair (nil when absent) and the store revision of the read.
func (s *Store) get(ctx context.Context, k string) (*kvstore.KVPair, int64, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, resp.Header.Revision, nil
	}
	return pair(resp.Kvs[0]), resp.Header.Revision, nil
}

// Delete removes key; an absent key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.normalize("delete", key)
	if err != nil {
		return err
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Delete(octx, k, s.writeOpts()...)
	if err != nil {
		return s.fail(ctx, "delete", k, err)
	}
	s.released(resp.PrevKvs...)
	return nil
}

// Exists reports whether key is present.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	k, err := s.normalize("exists", key)
	if err != nil {
		return false, err
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(octx, k, clientv3.WithCountOnly())
	if err != nil {
		return false, s.fail(ctx, "exists", k, err)
	}
	return resp.Count > 0, nil
}

// List returns every key below directory, sorted (etcd ranges are in key order).
func (s *Store) List(ctx context.Context, directory string) ([]*kvstore.KVPair, error) {
	dir, err := s.normalize("list", directory)
	if err != nil {
		return nil, err
	}
	pairs, _, err := s.list(ctx, dir)
	if err != nil {
		return nil, s.fail(ctx, "list", dir, err)
	}
	if len(pairs) == 0 {
		return nil, kvstore.Wrap(kvstore.Etcd, "list", dir, kvstore.ErrKeyNotFound)
	}
	return pairs, nil
}

// list reads the keys below a normalised directory (an empty, non-nil slice when none) and the
// store revision of the read.
func (s *Store) list(ctx context.Context, dir string) ([]*kvstore.KVPair, int64, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, dirPrefix(dir), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	pairs := make([]*kvstore.KVPair, len(resp.Kvs))
	backing := make([]kvstore.KVPair, len(resp.Kvs)) // one allocation for all the pairs
	for i, kv := range resp.Kvs {
		backing[i] = pairValue(kv)
		pairs[i] = &backing[i]
	}
	return pairs, resp.Header.Revision, nil
}

// DeleteTree removes every key below directory in one request.
func (s *Store) DeleteTree(ctx context.Context, directory string) error {
	dir, err := s.normalize("deletetree", directory)
	if err != nil {
		return err
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Delete(octx, dirPrefix(dir), s.writeOpts(clientv3.WithPrefix())...)
	if err != nil {
		return s.fail(ctx, "deletetree", dir, err)
	}
	s.released(resp.PrevKvs...)
	return nil
}
