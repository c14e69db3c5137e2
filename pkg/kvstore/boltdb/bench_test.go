package boltdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/kvstore/kvtest"
)

// BenchmarkStore measures kvop against bbolt used directly, with kvtest's workload:
//
//	kvop/...                 the Store (Put, Get, AtomicPut, List1000)
//	raw/...                  the same with bbolt alone: Update, View, a CAS in Update, a cursor
//	open-file-per-call/Put   what libkv's boltdb store did: open and close the file per call
//	parallel/{kvop,raw}/Put  32 writers per CPU: kvop batches them; raw uses DB.Batch
func BenchmarkStore(b *testing.B) {
	b.Run("kvop", func(b *testing.B) {
		kvtest.Bench(b, func(b *testing.B) kvstore.Store { return openAt(b, tempDB(b), nil) })
	})
	b.Run("raw", func(b *testing.B) {
		kvtest.BenchOps(b, rawOps(openRaw(b, tempDB(b)), false))
	})
	b.Run("open-file-per-call", func(b *testing.B) {
		path := tempDB(b)
		value := make([]byte, kvtest.BenchValueSize)
		b.Run("Put", func(b *testing.B) {
			b.SetBytes(kvtest.BenchValueSize)
			for b.Loop() {
				db, err := bolt.Open(path, 0o600, nil)
				if err != nil {
					b.Fatal(err)
				}
				err = rawPut(db, []byte("kvop"), "bench/k", value, false)
				if cerr := db.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("parallel", func(b *testing.B) {
		b.Run("kvop", func(b *testing.B) {
			st := openAt(b, tempDB(b), nil)
			benchParallelPut(b, kvtest.StoreOps(st).Put)
		})
		b.Run("raw", func(b *testing.B) {
			db := openRaw(b, tempDB(b))
			db.MaxBatchDelay = batchDelay // the same tuning as kvop
			benchParallelPut(b, rawOps(db, true).Put)
		})
	})
}

// benchParallelPut runs Put from many goroutines, each on keys of its own.
func benchParallelPut(b *testing.B, put func(ctx context.Context, key string, value []byte) error) {
	value := make([]byte, kvtest.BenchValueSize)
	b.SetBytes(kvtest.BenchValueSize)
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		key := fmt.Sprintf("bench/par/%p", pb)
		for pb.Next() {
			if err := put(ctx, key, value); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func openRaw(b *testing.B, path string) *bolt.DB {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

// rawPut writes value behind an 8-byte version taken from the bucket sequence: the least a
// store needs to offer compare-and-swap.
func rawPut(db *bolt.DB, bucket []byte, key string, value []byte, batch bool) error {
	do := db.Update
	if batch {
		do = db.Batch
	}
	return do(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		return bk.Put([]byte(key), versioned(seq, value))
	})
}

func versioned(seq uint64, value []byte) []byte {
	buf := make([]byte, 8+len(value))
	binary.BigEndian.PutUint64(buf, seq)
	copy(buf[8:], value)
	return buf
}

// rawOps is kvtest's workload on bbolt alone, with no TTL, normalisation, watches or
// bookkeeping: the floor that kvop's numbers compare with.
func rawOps(db *bolt.DB, batch bool) kvtest.Ops {
	bucket := []byte("kvop")
	errNotFound := errors.New("not found")
	get := func(key string) (version uint64, value []byte, err error) {
		err = db.View(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucket)
			if bk == nil {
				return errNotFound
			}
			raw := bk.Get([]byte(key))
			if raw == nil {
				return errNotFound
			}
			version, value = binary.BigEndian.Uint64(raw), append([]byte{}, raw[8:]...)
			return nil
		})
		return version, value, err
	}
	return kvtest.Ops{
		Put: func(_ context.Context, key string, value []byte) error {
			return rawPut(db, bucket, key, value, batch)
		},
		Get: func(_ context.Context, key string) ([]byte, error) {
			_, v, err := get(key)
			return v, err
		},
		Version: func(_ context.Context, key string) (uint64, error) {
			version, _, err := get(key)
			return version, err
		},
		AtomicPut: func(_ context.Context, key string, value []byte, index uint64) (uint64, error) {
			var seq uint64
			err := db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket(bucket)
				raw := bk.Get([]byte(key))
				if raw == nil || binary.BigEndian.Uint64(raw) != index {
					return errors.New("modified")
				}
				var err error
				if seq, err = bk.NextSequence(); err != nil {
					return err
				}
				return bk.Put([]byte(key), versioned(seq, value))
			})
			return seq, err
		},
		List: func(_ context.Context, dir string) (int, error) {
			n := 0
			prefix := []byte(dir + "/")
			err := db.View(func(tx *bolt.Tx) error {
				c := tx.Bucket(bucket).Cursor()
				for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
					_ = append([]byte{}, v[8:]...) // List copies values out of the mmap, as kvop does
					n++
				}
				return nil
			})
			return n, err
		},
		DeleteTree: func(_ context.Context, dir string) error {
			prefix := []byte(dir + "/")
			return db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket(bucket)
				if bk == nil {
					return nil
				}
				c := bk.Cursor()
				for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
					if err := c.Delete(); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
}
