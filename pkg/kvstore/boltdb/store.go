package boltdb

import (
	"context"
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/kvop/kvop/pkg/kvstore"
)

func init() { kvstore.Register(kvstore.BoltDB, Open) }

const backend = kvstore.BoltDB

// store is one kvstore.Store on a bucket of a shared file handle.
type store struct {
	h          *handle
	bucket     string // bucket name, as the broker, reaper and keep-alives know it
	bucketName []byte // the same, for bbolt

	mu     sync.Mutex
	closed bool
	done   chan struct{} // closed by Close: ends watches, keep-alives, lock holders and waits
	ops    sync.WaitGroup
	bg     sync.WaitGroup // goroutines started by this store
}

// Open opens (or creates) the bbolt file addrs[0] and returns a store on bucket cfg.Bucket.
// kvstore.New calls it; cfg may be nil when called directly.
func Open(ctx context.Context, addrs []string, cfg *kvstore.Config) (kvstore.Store, error) {
	if len(addrs) == 0 || addrs[0] == "" {
		return nil, kvstore.Wrap(backend, "open", "", errors.New("no database file path given"))
	}
	c := kvstore.Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.ConnectionTimeout <= 0 {
		c.ConnectionTimeout = kvstore.DefaultConnectionTimeout
	}
	if c.Bucket == "" {
		c.Bucket = kvstore.DefaultBucket
	}
	ctx = orBackground(ctx)
	h, err := acquire(ctx, addrs[0], c.ConnectionTimeout)
	if err != nil {
		return nil, kvstore.Wrap(backend, "open", "", err)
	}
	if err := h.initBucket(c.Bucket); err != nil {
		_ = h.release()
		return nil, kvstore.Wrap(backend, "open", "", fmt.Errorf("bucket %q in %s: %w", c.Bucket, addrs[0], err))
	}
	return &store{h: h, bucket: c.Bucket, bucketName: []byte(c.Bucket), done: make(chan struct{})}, nil
}

// begin validates the store state, ctx and key for one operation; on success the caller must
// call s.ops.Done. It returns the normalised key.
func (s *store) begin(ctx context.Context, op, key string) (string, error) {
	k, err := normalize(key)
	if err != nil {
		return "", kvstore.Wrap(backend, op, key, err)
	}
	if err := s.enter(ctx, op, k); err != nil {
		return "", err
	}
	return k, nil
}

// enter registers an operation in flight, so that Close waits for it before it releases the
// file.
func (s *store) enter(ctx context.Context, op, key string) error {
	ctx = orBackground(ctx)
	if err := ctx.Err(); err != nil {
		return kvstore.Wrap(backend, op, key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return kvstore.Wrap(backend, op, key, kvstore.ErrClosed)
	}
	s.ops.Add(1)
	return nil
}

// orBackground keeps a nil ctx (a caller bug) from panicking in a select.
func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// normalize is kvstore.NormalizeKey plus bbolt's key size limit.
func normalize(key string) (string, error) {
	k, err := kvstore.NormalizeKey(key)
	if err != nil {
		return "", err
	}
	if len(k) > bolt.MaxKeySize {
		return "", fmt.Errorf("%w: key is %d bytes, bbolt stores at most %d", kvstore.ErrInvalidKey, len(k), bolt.MaxKeySize)
	}
	return k, nil
}

// Close ends this store's watches, keep-alives and locks (a held lock is released; a kept-alive
// key expires by its deadline) and drops its reference to the file, which is closed with the
// last store on it. Closing twice is a no-op.
func (s *store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	s.ops.Wait()
	s.bg.Wait()
	return kvstore.Wrap(backend, "close", "", s.h.release())
}

// written is the after-commit bookkeeping of a write to key: the reaper learns the deadline,
// older keep-alives of the key end, and watchers are told. rev orders the write (LastIndex, or
// the revision a delete took); expiry is the new deadline (0 for none or a delete).
func (s *store) written(key string, rev uint64, expiry int64) {
	s.h.reaper.schedule(s.bucket, key, expiry)
	s.h.keepAlives.changed(bucketKey{s.bucket, key}, rev)
	s.h.broker.publish(s.bucket, key)
}

// bucketOf returns the store's bucket in tx. It exists from Open on (nothing deletes it), so
// nil means the file was tampered with.
func (s *store) bucketOf(tx *bolt.Tx) (*bolt.Bucket, error) {
	b := tx.Bucket(s.bucketName)
	if b == nil {
		return nil, fmt.Errorf("bucket %q is missing from %s", s.bucket, s.h.path)
	}
	return b, nil
}
