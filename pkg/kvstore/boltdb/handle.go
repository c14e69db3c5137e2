package boltdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kvop/kvop/pkg/kvstore"
)

// ErrFileLocked is wrapped (together with kvstore.ErrNotReachable) by the error of an open whose
// database file is held by another process: bbolt allows one process per file.
var ErrFileLocked = errors.New("database file is locked by another process")

// Bounds of the flock wait at open. bbolt waits forever when Options.Timeout is 0, which would
// turn "another process has the file" into a hang; a short wait still rides over the moment a
// killed previous owner takes to release its lock.
const (
	minLockWait = 50 * time.Millisecond
	maxLockWait = time.Second
)

// batchDelay is how long bbolt's DB.Batch collects concurrent writers before it commits. The
// default (10ms) is tuned for throughput alone; an uncontended write skips Batch altogether (see
// handle.update), so this only delays writers that already had to queue behind another one.
const batchDelay = time.Millisecond

// handles holds the one open bbolt handle per file of this process. bbolt takes an exclusive
// flock per open file description, so a second bolt.Open of the same file in the same process
// would block on itself; sharing also lets every store on the file see the same notifications.
var (
	handlesMu sync.Mutex
	handles   = map[string]*handle{}
)

// handle is one open database file, shared by every store on it in this process.
type handle struct {
	path string // canonical path, the key in handles
	db   *bolt.DB
	refs int // guarded by handlesMu

	writers atomic.Int32 // writes in progress, to choose between Update and Batch

	broker     broker
	reaper     reaper
	keepAlives keepAliveSet

	bucketsMu sync.Mutex
	buckets   map[string]bool // buckets created and swept of expired keys since open
}

// canonicalPath makes different spellings of one file ("kv.db", "./kv.db", a symlinked
// directory) share a handle.
func canonicalPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real, nil
	}
	// The file does not exist yet: resolve its directory instead.
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs)), nil
	}
	return abs, nil
}

// lockWait is how long open waits for another process to release the file.
func lockWait(ctx context.Context, connTimeout time.Duration) time.Duration {
	wait := min(max(connTimeout/10, minLockWait), maxLockWait)
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, max(time.Until(dl), time.Millisecond))
	}
	return wait
}

// acquire returns the shared handle of path, opening the file if this process has not yet.
func acquire(ctx context.Context, path string, connTimeout time.Duration) (*handle, error) {
	canon, err := canonicalPath(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	handlesMu.Lock()
	defer handlesMu.Unlock()
	if h, ok := handles[canon]; ok {
		h.refs++
		return h, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	wait := lockWait(ctx, connTimeout)
	db, err := bolt.Open(canon, 0o600, &bolt.Options{Timeout: wait})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s (waited %s; a bbolt file can be open in one process only) (%w)",
				ErrFileLocked, canon, wait, kvstore.ErrNotReachable)
		}
		if errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", kvstore.ErrNotReachable, err) // names the path
		}
		return nil, fmt.Errorf("%s: %w", canon, err)
	}
	db.MaxBatchDelay = batchDelay
	h := &handle{
		path:    canon,
		db:      db,
		refs:    1,
		buckets: map[string]bool{},
	}
	h.broker.init()
	h.reaper.init()
	h.keepAlives.init()
	go h.reapLoop()
	handles[canon] = h
	return h, nil
}

// release drops one reference; the last one stops the reaper and closes the file.
func (h *handle) release() error {
	handlesMu.Lock()
	defer handlesMu.Unlock()
	h.refs--
	if h.refs > 0 {
		return nil
	}
	delete(handles, h.path)
	h.reaper.shutdown()
	return h.db.Close()
}

// update runs fn in a write transaction. A lone writer commits at once with Update; when other
// writes are already in flight it joins a Batch so they share one commit (and one fsync).
// fn may run more than once under Batch (bbolt re-runs the batch without a failing call), so
// callers keep their results in variables that fn resets, and fn returns an error only for a
// real storage failure, never for an outcome such as "key exists".
func (h *handle) update(fn func(*bolt.Tx) error) error {
	defer h.writers.Add(-1)
	if h.writers.Add(1) > 1 {
		return h.db.Batch(fn)
	}
	return h.db.Update(fn)
}

// errWrite is returned by a mutate function in the read-only pass: "I have to write".
var errWrite = errors.New("boltdb: write transaction needed")

// mutate runs fn first in a read-only transaction, where fn returns errWrite (see needWrite)
// at the point it would change something, and only then runs it again in a write
// transaction. A write transaction costs a commit and an fsync even when it changes nothing, so
// refusals (ErrKeyExists, ErrKeyModified, a held lock) and no-ops (deleting an absent key) are
// decided on a snapshot instead, which is as good a linearisation point as the write
// transaction would be.
func (h *handle) mutate(fn func(*bolt.Tx) error) error {
	if err := h.db.View(fn); !errors.Is(err, errWrite) {
		return err
	}
	return h.update(fn)
}

// needWrite is what a mutate function calls before its first change.
func needWrite(tx *bolt.Tx) error {
	if !tx.Writable() {
		return errWrite
	}
	return nil
}

// initBucket creates the bucket if needed and, the first time this handle serves it, deletes
// the keys that expired while no process had the file open and schedules the others for the
// reaper.
func (h *handle) initBucket(name string) error {
	h.bucketsMu.Lock()
	defer h.bucketsMu.Unlock()
	if h.buckets[name] {
		return nil
	}
	var live []expiring
	err := h.mutate(func(tx *bolt.Tx) error {
		live = live[:0]
		b := tx.Bucket([]byte(name))
		if b == nil {
			if err := needWrite(tx); err != nil {
				return err
			}
			_, err := tx.CreateBucket([]byte(name))
			return err // a new bucket has nothing to sweep
		}
		now := time.Now().UnixNano()
		var dead [][]byte
		err := b.ForEach(func(k, v []byte) error {
			rec, err := decode(v)
			if err != nil || rec.expiry == 0 {
				return nil // foreign values are left alone
			}
			if rec.expired(now) {
				dead = append(dead, append([]byte(nil), k...))
			} else {
				live = append(live, expiring{key: string(k), at: rec.expiry})
			}
			return nil
		})
		if err != nil || len(dead) == 0 {
			return err
		}
		if err := needWrite(tx); err != nil {
			return err
		}
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range live {
		h.reaper.schedule(name, e.key, e.at)
	}
	h.buckets[name] = true
	return nil
}
