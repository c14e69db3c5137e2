package boltdb

import (
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// minRefresh keeps a tiny TTL from turning the refresher into a busy loop.
const minRefresh = 10 * time.Millisecond

// keepAlive refreshes the deadline of one key written with TTL and KeepAlive.
type keepAlive struct {
	bk    bucketKey
	index uint64 // the LastIndex it keeps alive; any other write ends it
	ttl   time.Duration
	stop  chan struct{}
	once  sync.Once
}

func (k *keepAlive) end() { k.once.Do(func() { close(k.stop) }) }

// keepAliveSet is the file's running keep-alives, so that a write to a key from any store on
// the file ends the keep-alive at once. The set is only about promptness: a refresh also checks
// in its transaction that the key still has the keep-alive's LastIndex, so a stale one never
// refreshes anything and ends at its next tick.
type keepAliveSet struct {
	mu sync.Mutex
	m  map[bucketKey]*keepAlive
}

func (s *keepAliveSet) init() { s.m = map[bucketKey]*keepAlive{} }

// changed ends the keep-alive of bk unless it belongs to a write at least as recent as rev (a
// LastIndex or delete revision, both from the bucket sequence, so they order the writes).
func (s *keepAliveSet) changed(bk bucketKey, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.m[bk]; ok && k.index < rev {
		k.end()
		delete(s.m, bk)
	}
}

// add registers k unless a more recent write already owns the key; it reports whether k runs.
func (s *keepAliveSet) add(k *keepAlive) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[k.bk]; ok {
		if old.index >= k.index {
			return false
		}
		old.end()
	}
	s.m[k.bk] = k
	return true
}

func (s *keepAliveSet) remove(k *keepAlive) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[k.bk] == k {
		delete(s.m, k.bk)
	}
}

// refreshInterval is how often a key with ttl is refreshed: three chances before it expires.
func refreshInterval(ttl time.Duration) time.Duration {
	return max(ttl/3, minRefresh)
}

// startKeepAlive keeps key (written with LastIndex index) alive until it is changed, the store
// is closed, or a refresh finds it gone.
func (s *store) startKeepAlive(key string, index uint64, ttl time.Duration) {
	k := &keepAlive{bk: bucketKey{s.bucket, key}, index: index, ttl: ttl, stop: make(chan struct{})}
	if !s.h.keepAlives.add(k) {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer s.h.keepAlives.remove(k)
		t := time.NewTicker(refreshInterval(ttl))
		defer t.Stop()
		for {
			select {
			case <-k.stop:
				return
			case <-s.done:
				// The key now expires by its stored deadline, as if the process had died.
				return
			case <-t.C:
				if ok, _ := s.refresh(key, index, ttl); !ok {
					return
				}
			}
		}
	}()
}

// refresh moves the deadline of key to now+ttl if it still holds LastIndex index and has not
// expired. LastIndex and the value stay as they are and no watcher is told: a refresh is not a
// change. ok is false when the key is no longer the one being kept alive; err reports a failed
// write (the next tick retries).
func (s *store) refresh(key string, index uint64, ttl time.Duration) (ok bool, err error) {
	var at int64
	err = s.h.update(func(tx *bolt.Tx) error {
		ok, at = false, 0
		b := tx.Bucket(s.bucketName)
		if b == nil {
			return nil
		}
		raw := b.Get([]byte(key))
		if raw == nil {
			return nil
		}
		rec, err := decode(raw)
		now := time.Now()
		if err != nil || rec.index != index || rec.expired(now.UnixNano()) {
			return nil
		}
		rec.expiry = deadline(now, ttl)
		at = rec.expiry
		ok = true
		return b.Put([]byte(key), rec.encode())
	})
	if err != nil {
		return true, err
	}
	if ok {
		s.h.reaper.schedule(s.bucket, key, at)
	}
	return ok, nil
}
