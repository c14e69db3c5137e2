package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kvop/kvop/pkg/kvstore"
)

// maxAttempts bounds the read-modify-write loops that retry when another client changed a node
// between the read and the write (the conditions are re-evaluated on every attempt).
const maxAttempts = 64

// condition of a write.
type condition int

const (
	always      condition = iota // Put
	ifAbsent                     // AtomicPut with previous == nil
	ifUnchanged                  // AtomicPut with previous: Mzxid must still be previous.LastIndex
)

// Put writes value at key. With TTL the key is an ephemeral node of this session (see the
// package doc); without, a persistent one.
func (s *Store) Put(ctx context.Context, key string, value []byte, opts *kvstore.WriteOptions) error {
	k, p, err := s.normalize("put", key)
	if err != nil {
		return err
	}
	_, err = s.write(ctx, k, p, value, encodeValue(value), opts, always, 0)
	return s.fail("put", k, err)
}

// AtomicPut is compare-and-swap on Mzxid (LastIndex): ZooKeeper can only compare a node's
// version, so the Mzxid is compared after a read and the write is conditional on the version
// that read saw; any change in between makes the write fail and the comparison run again.
func (s *Store) AtomicPut(ctx context.Context, key string, value []byte, previous *kvstore.KVPair, opts *kvstore.WriteOptions) (bool, *kvstore.KVPair, error) {
	k, p, err := s.normalize("atomicput", key)
	if err != nil {
		return false, nil, err
	}
	cond, index := ifAbsent, uint64(0)
	if previous != nil {
		cond, index = ifUnchanged, previous.LastIndex
	}
	pair, err := s.write(ctx, k, p, value, encodeValue(value), opts, cond, index)
	if err != nil {
		return false, nil, s.fail("atomicput", k, err)
	}
	return true, pair, nil
}

// write is the one place that writes a key. A node at p is either absent, an implicit parent
// (counts as absent), or a key; persistent or ephemeral (a TTL key). ZooKeeper cannot convert
// between persistent and ephemeral, so such a write deletes and re-creates the node in one
// transaction that is conditional on the version read. data is what the node holds for value
// (encodeValue(value), or value itself for PutVerbatim). With cond always (Put) the pair may
// be nil: Put does not return it.
func (s *Store) write(ctx context.Context, key, p string, value, data []byte, opts *kvstore.WriteOptions, cond condition, index uint64) (*kvstore.KVPair, error) {
	var o kvstore.WriteOptions
	if opts != nil {
		o = *opts
	}
	if o.TTL < 0 {
		o.TTL = 0
	}
	flags := int32(zk.FlagPersistent)
	if o.TTL > 0 {
		flags = zk.FlagEphemeral
	}
	done := func(written *zk.Stat) (*kvstore.KVPair, error) {
		s.ttls.written(s, p, written.Mzxid, o.TTL, o.KeepAlive, data)
		return &kvstore.KVPair{Key: key, Value: append([]byte{}, value...), LastIndex: uint64(written.Mzxid)}, nil
	}
	if cond == always {
		// The common case in one round trip: the node exists in the wanted mode (or not at all).
		written, err := s.zset(ctx, p, data, -1)
		if err == nil && s.modeFits(written, o.TTL) {
			return done(written)
		}
		if errors.Is(err, zk.ErrNoNode) && o.TTL == 0 && !s.ttls.has(p) {
			// A new persistent key: Put wants no pair, and no TTL bookkeeping of this store
			// needs the new node's Mzxid, so a plain create does (zcreateStat is a
			// transaction of two writes). An entry in the table means a TTL write of this key
			// may race with this one, whose bookkeeping needs this write's Mzxid (below).
			_, err = s.zcreate(ctx, p, data, flags, s.acl())
			if err == nil {
				return nil, nil
			}
		} else if errors.Is(err, zk.ErrNoNode) {
			written, err = s.zcreateStat(ctx, p, data, flags)
			if err == nil {
				return done(written)
			}
		}
		if err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrNodeExists) {
			return nil, err
		}
		// Wrong mode (persistent ⇄ TTL), missing parents, or a race: the general path.
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		cur, stat, err := s.zget(ctx, p)
		var written *zk.Stat
		switch {
		case errors.Is(err, zk.ErrNoNode):
			if cond == ifUnchanged {
				return nil, kvstore.ErrKeyNotFound
			}
			written, err = s.zcreateStat(ctx, p, data, flags)
			if errors.Is(err, zk.ErrNoNode) {
				if err := s.ensureParents(ctx, p); err != nil {
					return nil, err
				}
				continue
			}
		case err != nil:
			return nil, err
		default:
			_, isKey := decodeValue(cur)
			switch {
			case cond == ifAbsent && isKey:
				return nil, kvstore.ErrKeyExists
			case cond == ifUnchanged && !isKey:
				return nil, kvstore.ErrKeyNotFound
			case cond == ifUnchanged && uint64(stat.Mzxid) != index:
				return nil, kvstore.ErrKeyModified
			}
			version := stat.Version
			if cond == always {
				version = -1
			}
			switch {
			case s.modeFits(stat, o.TTL):
				written, err = s.zset(ctx, p, data, version)
			case o.TTL > 0 && stat.NumChildren > 0:
				return nil, kvstore.Mark(kvstore.ErrInvalidKey, fmt.Errorf(
					"on ZooKeeper a TTL key cannot have keys below it (%d children)", stat.NumChildren))
			default:
				written, err = s.zreplace(ctx, p, stat.Version, data, flags)
			}
		}
		if errors.Is(err, zk.ErrNodeExists) || errors.Is(err, zk.ErrBadVersion) ||
			errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrNotEmpty) {
			continue // changed meanwhile: look again
		}
		if err != nil {
			return nil, err
		}
		return done(written)
	}
	return nil, fmt.Errorf("gave up after %d attempts: the node kept changing", maxAttempts)
}

// modeFits reports whether a node can take a write with ttl as it is: persistent for no TTL,
// an ephemeral node of this store's session for a TTL (so that it dies with this process).
func (s *Store) modeFits(stat *zk.Stat, ttl time.Duration) bool {
	if ttl > 0 {
		return stat.EphemeralOwner != 0 && stat.EphemeralOwner == s.conn.SessionID()
	}
	return stat.EphemeralOwner == 0
}
