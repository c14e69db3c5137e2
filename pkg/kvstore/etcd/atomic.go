package etcd

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Compare-and-swap is one transaction: the write happens only if the key is absent (no
// previous) or still at previous.LastIndex (its ModRevision); otherwise the else branch counts
// the key, which tells a modified key from a deleted one in the same round trip. etcd applies
// transactions one at a time, so of N racers with the same previous exactly one wins.

// unchanged is the condition that the key exists and was last changed at previous. The
// CreateRevision test keeps a previous with LastIndex 0 from matching an absent key.
func unchanged(k string, previous *kvstore.KVPair) []clientv3.Cmp {
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(k), ">", 0),
		clientv3.Compare(clientv3.ModRevision(k), "=", int64(previous.LastIndex)),
	}
}

// AtomicPut writes key only if it is absent (previous == nil) or unchanged since previous.
func (s *Store) AtomicPut(ctx context.Context, key string, value []byte, previous *kvstore.KVPair, opts *kvstore.WriteOptions) (bool, *kvstore.KVPair, error) {
	k, err := s.normalize("atomicput", key)
	if err != nil {
		return false, nil, err
	}
	cmp := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)}
	if previous != nil {
		cmp = unchanged(k, previous)
	}
	var lease clientv3.LeaseID
	keep := false
	if opts != nil && opts.TTL > 0 {
		keep = opts.KeepAlive
		if lease, err = s.grant(ctx, opts.TTL, keep); err != nil {
			return false, nil, s.fail(ctx, "atomicput", k, err)
		}
	}
	ops := s.writeOpts()
	if lease != 0 {
		ops = append(ops, clientv3.WithLease(lease))
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(octx).
		If(cmp...).
		Then(clientv3.OpPut(k, string(value), ops...)).
		Else(clientv3.OpGet(k, clientv3.WithCountOnly())).
		Commit()
	if err != nil || !resp.Succeeded {
		if keep {
			s.unref(lease)
		}
	}
	if err != nil {
		return false, nil, s.fail(ctx, "atomicput", k, err)
	}
	if !resp.Succeeded {
		present := resp.Responses[0].GetResponseRange().GetCount() > 0
		switch {
		case previous == nil:
			err = kvstore.ErrKeyExists
		case present:
			err = kvstore.ErrKeyModified
		default:
			err = kvstore.ErrKeyNotFound
		}
		return false, nil, kvstore.Wrap(kvstore.Etcd, "atomicput", k, err)
	}
	s.released(resp.Responses[0].GetResponsePut().GetPrevKv())
	if value == nil {
		value = []byte{}
	}
	// The transaction's revision is the one its put wrote: the key's new ModRevision.
	return true, &kvstore.KVPair{Key: k, Value: value, LastIndex: uint64(resp.Header.Revision)}, nil
}

// AtomicDelete deletes key only if it is unchanged since previous.
func (s *Store) AtomicDelete(ctx context.Context, key string, previous *kvstore.KVPair) (bool, error) {
	k, err := s.normalize("atomicdelete", key)
	if err != nil {
		return false, err
	}
	if previous == nil {
		return false, kvstore.Wrap(kvstore.Etcd, "atomicdelete", k, kvstore.ErrPreviousNotSpecified)
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(octx).
		If(unchanged(k, previous)...).
		Then(clientv3.OpDelete(k, s.writeOpts()...)).
		Else(clientv3.OpGet(k, clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return false, s.fail(ctx, "atomicdelete", k, err)
	}
	if !resp.Succeeded {
		err = kvstore.ErrKeyNotFound
		if resp.Responses[0].GetResponseRange().GetCount() > 0 {
			err = kvstore.ErrKeyModified
		}
		return false, kvstore.Wrap(kvstore.Etcd, "atomicdelete", k, err)
	}
	s.released(resp.Responses[0].GetResponseDeleteRange().GetPrevKvs()...)
	return true, nil
}
