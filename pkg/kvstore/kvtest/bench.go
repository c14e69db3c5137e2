package kvtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Benchmark workload, the same for a kvop Store (Bench) and a backend's raw client (BenchOps),
// so that their numbers compare.
const (
	// BenchValueSize is the size of every value the benchmarks write.
	BenchValueSize = 256
	// BenchListKeys is how many keys List1000 lists.
	BenchListKeys = 1000
)

// Ops is one store's implementation of the benchmarked operations, for BenchOps: a raw client
// implements it to be measured beside kvop with the same workload and sub-benchmark names.
// Keys are normalised ("kvtest-bench/<run>/put"); a raw client maps them as its backend needs
// (e.g. a leading "/" for ZooKeeper).
type Ops struct {
	Put func(ctx context.Context, key string, value []byte) error
	Get func(ctx context.Context, key string) ([]byte, error)
	// AtomicPut replaces key's value if its version is still index (the version a previous
	// AtomicPut returned, or the one from Version) and returns the new version.
	AtomicPut func(ctx context.Context, key string, value []byte, index uint64) (uint64, error)
	// Version returns the current version of key, the starting point of AtomicPut.
	Version func(ctx context.Context, key string) (uint64, error)
	// List returns how many keys lie strictly below dir, at any depth.
	List func(ctx context.Context, dir string) (int, error)
	// DeleteTree removes every key below dir (to clean up after the benchmark).
	DeleteTree func(ctx context.Context, dir string) error
}

// Bench runs the sub-benchmarks Put, Get, AtomicPut and List1000 against a kvop Store that
// open returns (and Bench closes):
//
//	func BenchmarkStore(b *testing.B) {
//		b.Run("kvop", func(b *testing.B) { kvtest.Bench(b, open) })
//		b.Run("raw", func(b *testing.B) { kvtest.BenchOps(b, rawOps(b)) })
//	}
func Bench(b *testing.B, open func(b *testing.B) kvstore.Store) {
	st := open(b)
	b.Cleanup(func() { _ = st.Close() })
	BenchOps(b, StoreOps(st))
}

// StoreOps adapts a kvop Store to Ops.
func StoreOps(st kvstore.Store) Ops {
	return Ops{
		Put: func(ctx context.Context, key string, value []byte) error { return st.Put(ctx, key, value, nil) },
		Get: func(ctx context.Context, key string) ([]byte, error) {
			p, err := st.Get(ctx, key)
			if err != nil {
				return nil, err
			}
			return p.Value, nil
		},
		AtomicPut: func(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
			ok, p, err := st.AtomicPut(ctx, key, value, &kvstore.KVPair{Key: key, LastIndex: index}, nil)
			if err != nil {
				return 0, err
			}
			if !ok || p == nil {
				return 0, fmt.Errorf("AtomicPut(%q) = %v, %v without an error", key, ok, p)
			}
			return p.LastIndex, nil
		},
		Version: func(ctx context.Context, key string) (uint64, error) {
			p, err := st.Get(ctx, key)
			if err != nil {
				return 0, err
			}
			return p.LastIndex, nil
		},
		List: func(ctx context.Context, dir string) (int, error) {
			l, err := st.List(ctx, dir)
			return len(l), err
		},
		DeleteTree: func(ctx context.Context, dir string) error { return st.DeleteTree(ctx, dir) },
	}
}

// BenchOps runs the sub-benchmarks Put, Get, AtomicPut and List1000 against ops. Each works
// below a directory of its own, removed afterwards.
func BenchOps(b *testing.B, ops Ops) {
	value := make([]byte, BenchValueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	run := fmt.Sprintf("kvtest-bench/%x-%04x", time.Now().UnixNano()&0xffffffffff, rand.IntN(1<<16))
	sub := func(name string, body func(b *testing.B, ctx context.Context, dir string)) {
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			dir := run + "/" + name
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := ops.DeleteTree(ctx, dir); err != nil {
					b.Errorf("DeleteTree(%s): %v", dir, err)
				}
			})
			body(b, ctx, dir)
		})
	}

	sub("Put", func(b *testing.B, ctx context.Context, dir string) {
		key := dir + "/k"
		b.SetBytes(BenchValueSize)
		for b.Loop() {
			if err := ops.Put(ctx, key, value); err != nil {
				b.Fatal(err)
			}
		}
	})
	sub("Get", func(b *testing.B, ctx context.Context, dir string) {
		key := dir + "/k"
		if err := ops.Put(ctx, key, value); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(BenchValueSize)
		for b.Loop() {
			v, err := ops.Get(ctx, key)
			if err != nil {
				b.Fatal(err)
			}
			if len(v) != BenchValueSize {
				b.Fatalf("Get returned %d bytes, want %d", len(v), BenchValueSize)
			}
		}
	})
	sub("AtomicPut", func(b *testing.B, ctx context.Context, dir string) {
		key := dir + "/k"
		if err := ops.Put(ctx, key, value); err != nil {
			b.Fatal(err)
		}
		index, err := ops.Version(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if index, err = ops.AtomicPut(ctx, key, value, index); err != nil {
				b.Fatal(err)
			}
		}
	})
	sub(fmt.Sprintf("List%d", BenchListKeys), func(b *testing.B, ctx context.Context, dir string) {
		for i := range BenchListKeys {
			// Two levels, so that the listing is recursive as List is.
			if err := ops.Put(ctx, fmt.Sprintf("%s/d%02d/k%04d", dir, i%10, i), value); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			n, err := ops.List(ctx, dir)
			if err != nil {
				b.Fatal(err)
			}
			if n != BenchListKeys {
				b.Fatalf("List returned %d keys, want %d", n, BenchListKeys)
			}
		}
	})
}
