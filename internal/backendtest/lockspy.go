package backendtest

import (
	"bytes"
	"context"
	"sync"

	"github.com/kvop/kvop/pkg/kvstore"
)

// LockSpy wraps a store so that its locks report their tenures as they happen, for election
// checkers: Emit("ACQUIRED", term) when a Lock returns (term is the lock key's LastIndex, which
// leadership.Candidate reads as its term too), Emit("LOST", 0) before the Locker's user sees the
// loss, and Emit("RELEASED", 0) before an Unlock hands the key on.
type LockSpy struct {
	kvstore.Store
	Emit func(kind string, value uint64)
}

// NewLock returns a Locker that reports its tenures.
func (s *LockSpy) NewLock(ctx context.Context, key string, opts *kvstore.LockOptions) (kvstore.Locker, error) {
	l, err := s.Store.NewLock(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	var value []byte
	if opts != nil {
		value = opts.Value
	}
	return &spyLock{Locker: l, spy: s, key: key, value: value}, nil
}

type spyLock struct {
	kvstore.Locker
	spy   *LockSpy
	key   string
	value []byte

	mu   sync.Mutex
	held bool // between ACQUIRED and the first RELEASED or LOST
	gen  int  // tenure number: a loss signal of an earlier tenure is not this one's
}

func (l *spyLock) Lock(ctx context.Context) (<-chan struct{}, error) {
	lost, err := l.Locker.Lock(ctx)
	if err != nil {
		return nil, err
	}
	var term uint64
	if pair, err := l.spy.Store.Get(ctx, l.key); err == nil && bytes.Equal(pair.Value, l.value) {
		term = pair.LastIndex
	}
	l.mu.Lock()
	l.gen++
	gen := l.gen
	l.held = true
	l.spy.Emit("ACQUIRED", term)
	l.mu.Unlock()
	// The Locker's user sees the loss only on this channel, closed after LOST was reported.
	out := make(chan struct{})
	go func() {
		<-lost
		l.mu.Lock()
		if l.held && l.gen == gen {
			l.held = false
			l.spy.Emit("LOST", 0)
		}
		l.mu.Unlock()
		close(out)
	}()
	return out, nil
}

func (l *spyLock) Unlock(ctx context.Context) error {
	l.mu.Lock()
	if l.held {
		l.held = false
		l.spy.Emit("RELEASED", 0)
	}
	l.mu.Unlock()
	return l.Locker.Unlock(ctx)
}
