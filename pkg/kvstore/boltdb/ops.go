package boltdb

import (
	"bytes"
	"context"
	"strings"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Put writes value at key. With TTL the stored deadline is now+TTL; with KeepAlive too, this
// store refreshes it until the key is changed, the store is closed or the process dies.
func (s *store) Put(ctx context.Context, key string, value []byte, opts *kvstore.WriteOptions) error {
	k, err := s.begin(ctx, "put", key)
	if err != nil {
		return err
	}
	defer s.ops.Done()
	ttl := ttlOf(opts)
	var rec record
	err = s.h.update(func(tx *bolt.Tx) error {
		b, err := s.bucketOf(tx)
		if err != nil {
			return err
		}
		idx, err := b.NextSequence()
		if err != nil {
			return err
		}
		rec = record{index: idx, expiry: deadline(time.Now(), ttl), value: value}
		return b.Put([]byte(k), rec.encode())
	})
	if err != nil {
		return kvstore.Wrap(backend, "put", k, err)
	}
	s.written(k, rec.index, rec.expiry)
	if ttl > 0 && opts.KeepAlive {
		s.startKeepAlive(k, rec.index, ttl)
	}
	return nil
}

func ttlOf(opts *kvstore.WriteOptions) time.Duration {
	if opts == nil || opts.TTL <= 0 {
		return 0
	}
	return opts.TTL
}

// Get returns the pair at key; an expired key is absent even before the reaper deletes it.
func (s *store) Get(ctx context.Context, key string) (*kvstore.KVPair, error) {
	k, err := s.begin(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	defer s.ops.Done()
	p, err := s.read(k)
	if err != nil {
		return nil, kvstore.Wrap(backend, "get", k, err)
	}
	if p == nil {
		return nil, kvstore.Wrap(backend, "get", k, kvstore.ErrKeyNotFound)
	}
	return p, nil
}

// read returns the live pair at the normalised key, or nil when it is absent or expired.
func (s *store) read(k string) (*kvstore.KVPair, error) {
	var p *kvstore.KVPair
	err := s.view(func(b *bolt.Bucket) error {
		rec, ok, err := liveRecord(b, k, 0)
		if ok {
			p = rec.pair(k)
		}
		return err
	})
	return p, err
}

// view runs fn in a read-only transaction on the store's bucket. Unlike bbolt's DB.View it
// takes no closure over the caller's results, which saves an allocation on every read; fn
// must not keep bbolt memory past its return.
func (s *store) view(fn func(b *bolt.Bucket) error) error {
	tx, err := s.h.db.Begin(false)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	b, err := s.bucketOf(tx)
	if err != nil {
		return err
	}
	return fn(b)
}

// liveRecord decodes the record at k in b without copying it (its value aliases bbolt memory,
// valid only inside the transaction); ok is false when the key is absent or expired at now
// (unix nanoseconds; 0: the current time, read only for a record that has a deadline).
func liveRecord(b *bolt.Bucket, k string, now int64) (rec record, ok bool, err error) {
	raw := b.Get(keyBytes(k))
	if raw == nil {
		return record{}, false, nil
	}
	if rec, err = decode(raw); err != nil {
		return record{}, false, corruptErr([]byte(k))
	}
	if rec.expiry != 0 && now == 0 {
		now = time.Now().UnixNano()
	}
	if rec.expired(now) {
		return record{}, false, nil
	}
	return rec, true, nil
}

// keyBytes views k as bytes without copying, for bbolt lookups, which only compare the key
// (a copy would be the one allocation a read does beyond bbolt's own).
func keyBytes(k string) []byte { return unsafe.Slice(unsafe.StringData(k), len(k)) }

// pair copies the record out of bbolt's memory (valid only inside the transaction). An empty
// value stays a non-nil empty slice, so it is never mistaken for an absent one.
func (r record) pair(key string) *kvstore.KVPair {
	return &kvstore.KVPair{Key: key, Value: append([]byte{}, r.value...), LastIndex: r.index}
}

// Exists reports whether key holds a live value.
func (s *store) Exists(ctx context.Context, key string) (bool, error) {
	k, err := s.begin(ctx, "exists", key)
	if err != nil {
		return false, err
	}
	defer s.ops.Done()
	var found bool
	err = s.view(func(b *bolt.Bucket) error {
		var err error
		_, found, err = liveRecord(b, k, 0)
		return err
	})
	if err != nil {
		return false, kvstore.Wrap(backend, "exists", k, err)
	}
	return found, nil
}

// Delete removes key; an absent key is not an error.
func (s *store) Delete(ctx context.Context, key string) error {
	k, err := s.begin(ctx, "delete", key)
	if err != nil {
		return err
	}
	defer s.ops.Done()
	var rev uint64
	err = s.h.mutate(func(tx *bolt.Tx) error {
		rev = 0
		b, err := s.bucketOf(tx)
		if err != nil {
			return err
		}
		if b.Get([]byte(k)) == nil {
			return nil
		}
		if err := needWrite(tx); err != nil {
			return err
		}
		// The revision orders this delete against concurrent writes for the keep-alive
		// bookkeeping; using the sequence also keeps LastIndex unique across re-creation.
		if rev, err = b.NextSequence(); err != nil {
			return err
		}
		return b.Delete([]byte(k))
	})
	if err != nil {
		return kvstore.Wrap(backend, "delete", k, err)
	}
	if rev != 0 {
		s.written(k, rev, 0)
	}
	return nil
}

// List returns the live keys strictly below directory, sorted (bbolt keeps keys in byte order).
func (s *store) List(ctx context.Context, directory string) ([]*kvstore.KVPair, error) {
	dir, err := s.begin(ctx, "list", directory)
	if err != nil {
		return nil, err
	}
	defer s.ops.Done()
	pairs, err := s.list(dir)
	if err != nil {
		return nil, kvstore.Wrap(backend, "list", dir, err)
	}
	if len(pairs) == 0 {
		return nil, kvstore.Wrap(backend, "list", dir, kvstore.ErrKeyNotFound)
	}
	return pairs, nil
}

// list returns the live pairs strictly below the normalised dir; empty (not nil) when none.
//
// It allocates a handful of blocks whatever the number of keys (instead of three per key): a
// first pass over the cursor sizes the result, a second fills it. The pairs share one array,
// the keys one string and the values one buffer; each Value is capped at its own length, so
// appending to it copies instead of overwriting its neighbour. Keeping one pair keeps the
// whole listing's memory alive, which is fine for the short-lived results List returns.
func (s *store) list(dir string) ([]*kvstore.KVPair, error) {
	var pairs []*kvstore.KVPair
	prefix := make([]byte, 0, len(dir)+1)
	prefix = append(append(prefix, dir...), '/')
	err := s.view(func(b *bolt.Bucket) error {
		now := time.Now().UnixNano()
		c := b.Cursor()
		n, keyBytes, valueBytes := 0, 0, 0
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			rec, err := decode(v)
			if err != nil {
				return corruptErr(k)
			}
			if !rec.expired(now) {
				n, keyBytes, valueBytes = n+1, keyBytes+len(k), valueBytes+len(rec.value)
			}
		}
		if n == 0 {
			return nil
		}
		var keys strings.Builder
		keys.Grow(keyBytes)
		values := make([]byte, 0, valueBytes)
		structs := make([]kvstore.KVPair, n)
		pairs = make([]*kvstore.KVPair, n)
		i := 0
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && i < n; k, v = c.Next() {
			rec, _ := decode(v) // checked by the first pass, in the same transaction
			if rec.expired(now) {
				continue
			}
			ks, vs := keys.Len(), len(values)
			keys.Write(k)
			values = append(values, rec.value...)
			// A Builder's String aliases its buffer, and later writes only append to it, so
			// every key is a substring of the one final allocation.
			structs[i] = kvstore.KVPair{Key: keys.String()[ks:], Value: values[vs:len(values):len(values)], LastIndex: rec.index}
			pairs[i] = &structs[i]
			i++
		}
		return nil
	})
	if pairs == nil && err == nil {
		pairs = []*kvstore.KVPair{}
	}
	return pairs, err
}

// DeleteTree removes every key strictly below directory (expired ones too).
func (s *store) DeleteTree(ctx context.Context, directory string) error {
	dir, err := s.begin(ctx, "deletetree", directory)
	if err != nil {
		return err
	}
	defer s.ops.Done()
	prefix := []byte(dir + "/")
	var (
		deleted []string
		rev     uint64
	)
	err = s.h.mutate(func(tx *bolt.Tx) error {
		deleted, rev = deleted[:0], 0
		b, err := s.bucketOf(tx)
		if err != nil {
			return err
		}
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			deleted = append(deleted, string(k))
		}
		if len(deleted) == 0 {
			return nil
		}
		if err := needWrite(tx); err != nil {
			return err
		}
		if rev, err = b.NextSequence(); err != nil {
			return err
		}
		for _, k := range deleted {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return kvstore.Wrap(backend, "deletetree", dir, err)
	}
	for _, k := range deleted {
		s.h.keepAlives.changed(bucketKey{s.bucket, k}, rev)
	}
	s.h.broker.publish(s.bucket, deleted...)
	return nil
}

// AtomicPut writes key only if it is absent (previous == nil) or still has previous.LastIndex.
func (s *store) AtomicPut(ctx context.Context, key string, value []byte, previous *kvstore.KVPair, opts *kvstore.WriteOptions) (bool, *kvstore.KVPair, error) {
	k, err := s.begin(ctx, "atomicput", key)
	if err != nil {
		return false, nil, err
	}
	defer s.ops.Done()
	ttl := ttlOf(opts)
	var (
		rec     record
		outcome error // a refusal; fn must not return it, or Batch would re-run the others
	)
	err = s.h.mutate(func(tx *bolt.Tx) error {
		rec, outcome = record{}, nil
		b, err := s.bucketOf(tx)
		if err != nil {
			return err
		}
		now := time.Now()
		cur, found, err := liveRecord(b, k, now.UnixNano())
		if err != nil {
			return err
		}
		switch {
		case previous == nil && found:
			outcome = kvstore.ErrKeyExists
		case previous != nil && !found:
			outcome = kvstore.ErrKeyNotFound
		case previous != nil && cur.index != previous.LastIndex:
			outcome = kvstore.ErrKeyModified
		}
		if outcome != nil {
			return nil
		}
		if err := needWrite(tx); err != nil {
			return err
		}
		idx, err := b.NextSequence()
		if err != nil {
			return err
		}
		rec = record{index: idx, expiry: deadline(now, ttl), value: value}
		return b.Put([]byte(k), rec.encode())
	})
	if err == nil {
		err = outcome
	}
	if err != nil {
		return false, nil, kvstore.Wrap(backend, "atomicput", k, err)
	}
	s.written(k, rec.index, rec.expiry)
	if ttl > 0 && opts.KeepAlive {
		s.startKeepAlive(k, rec.index, ttl)
	}
	return true, &kvstore.KVPair{Key: k, Value: append([]byte{}, value...), LastIndex: rec.index}, nil
}

// AtomicDelete deletes key only if it still has previous.LastIndex.
func (s *store) AtomicDelete(ctx context.Context, key string, previous *kvstore.KVPair) (bool, error) {
	k, err := s.begin(ctx, "atomicdelete", key)
	if err != nil {
		return false, err
	}
	defer s.ops.Done()
	if previous == nil {
		return false, kvstore.Wrap(backend, "atomicdelete", k, kvstore.ErrPreviousNotSpecified)
	}
	var (
		rev     uint64
		outcome error
	)
	err = s.h.mutate(func(tx *bolt.Tx) error {
		rev, outcome = 0, nil
		b, err := s.bucketOf(tx)
		if err != nil {
			return err
		}
		cur, found, err := liveRecord(b, k, time.Now().UnixNano())
		if err != nil {
			return err
		}
		switch {
		case !found:
			outcome = kvstore.ErrKeyNotFound
		case cur.index != previous.LastIndex:
			outcome = kvstore.ErrKeyModified
		}
		if outcome != nil {
			return nil
		}
		if err := needWrite(tx); err != nil {
			return err
		}
		if rev, err = b.NextSequence(); err != nil {
			return err
		}
		return b.Delete([]byte(k))
	})
	if err == nil {
		err = outcome
	}
	if err != nil {
		return false, kvstore.Wrap(backend, "atomicdelete", k, err)
	}
	s.written(k, rev, 0)
	return true, nil
}
