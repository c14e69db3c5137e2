package boltdb

import (
	"context"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kvop/kvop/pkg/kvstore"
)

// NewLock returns a Locker on key. The lock is the key itself: held means it exists with the
// holder's LastIndex and LockOptions.Value, with a deadline the holder keeps refreshing.
func (s *store) NewLock(ctx context.Context, key string, opts *kvstore.LockOptions) (kvstore.Locker, error) {
	k, err := s.begin(ctx, "newlock", key)
	if err != nil {
		return nil, err
	}
	defer s.ops.Done()
	l := &locker{s: s, key: k, ttl: kvstore.DefaultLockTTL}
	if opts != nil {
		l.value = append([]byte{}, opts.Value...)
		if opts.TTL > 0 {
			l.ttl = opts.TTL
		}
	}
	return l, nil
}

type locker struct {
	s     *store
	key   string
	value []byte
	ttl   time.Duration

	// locking serialises Lock calls; mu guards held and is never held while waiting, so an
	// Unlock during another goroutine's Lock answers at once.
	locking sync.Mutex
	mu      sync.Mutex
	held    *holding // nil when not locked (or unlocked after a loss)
}

// holding is one tenure of the lock, watched over by a holder goroutine.
type holding struct {
	index uint64        // LastIndex of the lock key we wrote
	stop  chan struct{} // closed by Unlock
	done  chan struct{} // closed when the holder goroutine has exited
	lost  chan struct{} // given to the caller; closed when the tenure ends for any reason
}

// Lock waits until the lock key is absent (or expired), then writes it. Waiting sleeps on
// notifications of the key (Unlock, Delete, expiry by the reaper) and on the holder's stored
// deadline, so a waiter wakes at once without polling.
func (l *locker) Lock(ctx context.Context) (<-chan struct{}, error) {
	ctx = orBackground(ctx)
	s := l.s
	if err := s.enter(ctx, "lock", l.key); err != nil {
		return nil, err
	}
	defer s.ops.Done()
	l.locking.Lock()
	defer l.locking.Unlock()
	l.mu.Lock()
	if h := l.held; h != nil {
		select {
		case <-h.done: // lost meanwhile: take it again
			l.held = nil
		default:
			l.mu.Unlock()
			return h.lost, nil // already ours
		}
	}
	l.mu.Unlock()
	sub := s.h.broker.subscribe(s.bucket, l.key, false)
	handedOver := false
	defer func() {
		if !handedOver {
			s.h.broker.unsubscribe(sub)
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		acquired, index, holderDeadline, err := l.tryAcquire()
		if err != nil {
			return nil, kvstore.Wrap(backend, "lock", l.key, err)
		}
		if acquired {
			h := &holding{index: index, stop: make(chan struct{}), done: make(chan struct{}), lost: make(chan struct{})}
			l.mu.Lock()
			l.held = h
			l.mu.Unlock()
			handedOver = true
			s.bg.Add(1)
			go l.hold(h, sub)
			return h.lost, nil
		}
		// The reaper deletes an expired holder's key and notifies us; the timer is a backstop.
		if holderDeadline != 0 {
			timer.Reset(time.Duration(holderDeadline-time.Now().UnixNano()) + time.Millisecond)
		} else {
			timer.Stop()
		}
		select {
		case <-sub.notify:
		case <-timer.C:
		case <-ctx.Done():
			return nil, kvstore.Wrap(backend, "lock", l.key, ctx.Err())
		case <-s.done:
			return nil, kvstore.Wrap(backend, "lock", l.key, kvstore.ErrClosed)
		}
	}
}

// tryAcquire writes the lock key if it is free. When it is not, it returns the holder's
// deadline (0 if the key does not expire).
func (l *locker) tryAcquire() (acquired bool, index uint64, holderDeadline int64, err error) {
	s := l.s
	var expiry int64
	err = s.h.mutate(func(tx *bolt.Tx) error {
		acquired, index, holderDeadline, expiry = false, 0, 0, 0
		b, err := s.bucketOf(tx)
		if err != nil {
			return err
		}
		raw := b.Get([]byte(l.key))
		now := time.Now()
		if raw != nil {
			rec, err := decode(raw)
			if err != nil {
				return corruptErr([]byte(l.key))
			}
			if !rec.expired(now.UnixNano()) {
				holderDeadline = rec.expiry
				return nil
			}
		}
		if err := needWrite(tx); err != nil {
			return err
		}
		if index, err = b.NextSequence(); err != nil {
			return err
		}
		expiry = deadline(now, l.ttl)
		acquired = true
		return b.Put([]byte(l.key), record{index: index, expiry: expiry, value: l.value}.encode())
	})
	if err == nil && acquired {
		s.written(l.key, index, expiry)
	}
	return acquired, index, holderDeadline, err
}

// hold keeps the lock key alive every TTL/3 and watches it: once it is deleted, overwritten or
// expired behind our back, the lock is lost. It ends on Unlock (which deletes the key), on loss,
// and on Close (where it deletes the key itself).
func (l *locker) hold(h *holding, sub *subscription) {
	s := l.s
	defer s.bg.Done()
	defer close(h.done)
	defer close(h.lost)
	defer s.h.broker.unsubscribe(sub)
	t := time.NewTicker(refreshInterval(l.ttl))
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-s.done:
			l.release(h.index)
			return
		case <-sub.notify:
			p, err := s.read(l.key)
			if err == nil && (p == nil || p.LastIndex != h.index) {
				return
			}
		case <-t.C:
			if ok, _ := s.refresh(l.key, h.index, l.ttl); !ok {
				return
			}
		}
	}
}

// release deletes the lock key if it is still ours, waking the waiters.
func (l *locker) release(index uint64) error {
	s := l.s
	var rev uint64
	err := s.h.mutate(func(tx *bolt.Tx) error {
		rev = 0
		b, err := s.bucketOf(tx)
		if err != nil {
			return err
		}
		raw := b.Get([]byte(l.key))
		if raw == nil {
			return nil
		}
		if rec, err := decode(raw); err != nil || rec.index != index {
			return nil
		}
		if err := needWrite(tx); err != nil {
			return err
		}
		if rev, err = b.NextSequence(); err != nil {
			return err
		}
		return b.Delete([]byte(l.key))
	})
	if err != nil {
		return err
	}
	if rev != 0 {
		s.written(l.key, rev, 0)
	}
	return nil
}

// Unlock releases the lock. It returns ErrNotLocked if this Locker does not hold it, and nil
// after the lock was lost (the loss was already signalled on the Lock channel).
func (l *locker) Unlock(ctx context.Context) error {
	s := l.s
	if err := s.enter(ctx, "unlock", l.key); err != nil {
		return err
	}
	defer s.ops.Done()
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.held
	if h == nil {
		return kvstore.Wrap(backend, "unlock", l.key, kvstore.ErrNotLocked)
	}
	l.held = nil
	close(h.stop)
	<-h.done
	return kvstore.Wrap(backend, "unlock", l.key, l.release(h.index))
}
