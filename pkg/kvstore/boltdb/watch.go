package boltdb

import (
	"context"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Watch sends the pair at key (nil when absent), then the pair after every change. Changes
// made while the receiver is slow are coalesced into the latest state.
func (s *store) Watch(ctx context.Context, key string) (<-chan *kvstore.KVPair, error) {
	ctx = orBackground(ctx)
	k, err := s.begin(ctx, "watch", key)
	if err != nil {
		return nil, err
	}
	defer s.ops.Done()
	// Subscribe before the first read, so no change can fall between the two.
	sub := s.h.broker.subscribe(s.bucket, k, false)
	first, err := s.read(k)
	if err != nil {
		s.h.broker.unsubscribe(sub)
		return nil, kvstore.Wrap(backend, "watch", k, err)
	}
	out := make(chan *kvstore.KVPair)
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer close(out)
		defer s.h.broker.unsubscribe(sub)
		watchLoop(ctx, s.done, sub, out, first, func() (*kvstore.KVPair, bool) {
			p, err := s.read(k)
			return p, err == nil
		}, samePair)
	}()
	return out, nil
}

// WatchTree sends the full list below directory (empty when none), then the full list after
// every change below it.
func (s *store) WatchTree(ctx context.Context, directory string) (<-chan []*kvstore.KVPair, error) {
	ctx = orBackground(ctx)
	dir, err := s.begin(ctx, "watchtree", directory)
	if err != nil {
		return nil, err
	}
	defer s.ops.Done()
	sub := s.h.broker.subscribe(s.bucket, dir, true)
	first, err := s.list(dir)
	if err != nil {
		s.h.broker.unsubscribe(sub)
		return nil, kvstore.Wrap(backend, "watchtree", dir, err)
	}
	out := make(chan []*kvstore.KVPair)
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer close(out)
		defer s.h.broker.unsubscribe(sub)
		watchLoop(ctx, s.done, sub, out, first, func() ([]*kvstore.KVPair, bool) {
			l, err := s.list(dir)
			return l, err == nil
		}, sameList)
	}()
	return out, nil
}

// watchLoop delivers first, then after each notification re-reads the state and delivers it if
// it differs from what the receiver last got. While a delivery waits for the receiver, a newer
// state replaces it, so the receiver always ends up with the latest one. A failed read is
// skipped: the store is still open (Close waits for this loop), so the next change retries.
func watchLoop[T any](ctx context.Context, closed <-chan struct{}, sub *subscription, out chan<- T,
	first T, read func() (T, bool), same func(a, b T) bool) {
	var (
		last      T
		delivered bool // the receiver has had its first state
		pending   = first
		sending   = true
	)
	for {
		var send chan<- T
		if sending {
			send = out
		}
		select {
		case <-ctx.Done():
			return
		case <-closed:
			return
		case send <- pending:
			last, delivered, sending = pending, true, false
		case <-sub.notify:
			cur, ok := read()
			if !ok {
				continue
			}
			// Compare with what the receiver has, not with the undelivered state: if the key
			// went back to what it last saw, there is nothing to tell. The first state is
			// always sent.
			pending, sending = cur, !delivered || !same(cur, last)
		}
	}
}

// samePair reports whether two states of a key are the same version (LastIndex changes with
// every change, and is never reused).
func samePair(a, b *kvstore.KVPair) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Key == b.Key && a.LastIndex == b.LastIndex
}

func sameList(a, b []*kvstore.KVPair) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !samePair(a[i], b[i]) {
			return false
		}
	}
	return true
}
