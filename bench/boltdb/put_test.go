package boltdb

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kvop/kvop/pkg/kvstore"
	_ "github.com/kvop/kvop/pkg/kvstore/boltdb"
	"github.com/kvop/kvop/pkg/kvstore/kvtest"
)

// writerCounts are the concurrency levels of issue 10: one writer, a few, and a crowd (e.g.
// many pods registering at once through one operator).
var writerCounts = []int{1, 8, 64}

// BenchmarkPut reports ns/op and puts/s for every writer count:
//
//	kvop/writers=N                kvstore.New(BoltDB) once, Put from N goroutines (kvop groups
//	                              concurrent writers into one commit with bbolt's DB.Batch)
//	open-file-per-call/writers=N  libkv's model: lock a mutex, bolt.Open, Update, Close
//
// Every writer has a key of its own, and every Put is durable (one fsync per commit) in both.
func BenchmarkPut(b *testing.B) {
	value := make([]byte, kvtest.BenchValueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	for _, w := range writerCounts {
		b.Run(fmt.Sprintf("kvop/writers=%d", w), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "kv.db")
			st, err := kvstore.New(context.Background(), kvstore.BoltDB, []string{path}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			runWriters(b, w, func(ctx context.Context, key string) error { return st.Put(ctx, key, value, nil) })
		})
	}
	for _, w := range writerCounts {
		b.Run(fmt.Sprintf("open-file-per-call/writers=%d", w), func(b *testing.B) {
			s := &openPerCall{path: filepath.Join(b.TempDir(), "kv.db")}
			runWriters(b, w, func(_ context.Context, key string) error { return s.put(key, value) })
		})
	}
}

// runWriters shares b.N Puts among `writers` goroutines, so that ns/op is the time per Put of
// the whole group (the inverse of its throughput), whatever GOMAXPROCS is. b.RunParallel is not
// used because its goroutine count is a multiple of GOMAXPROCS.
func runWriters(b *testing.B, writers int, put func(ctx context.Context, key string) error) {
	ctx := context.Background()
	b.SetBytes(kvtest.BenchValueSize)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range writers {
		key := fmt.Sprintf("bench/writer-%03d", i)
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := put(ctx, key); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "puts/s")
	}
}

// openPerCall is the baseline: what libkv's boltdb store did for every call with its default
// PersistConnection=false — take the store's mutex, open the file, run one Update that stores
// the value behind an 8-byte index, close the file. The mutex is why its writers never overlap.
type openPerCall struct {
	mu    sync.Mutex
	path  string
	index uint64
}

func (s *openPerCall) put(key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte("libkv"))
		if err != nil {
			return err
		}
		s.index++
		buf := make([]byte, 8, 8+len(value))
		binary.LittleEndian.PutUint64(buf, s.index)
		return bk.Put([]byte(key), append(buf, value...))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}
