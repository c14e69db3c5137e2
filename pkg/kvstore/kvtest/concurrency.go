package kvtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/kvop/kvop/pkg/kvstore"
)

func concurrencySubtests() []subtest {
	return []subtest{
		{"ConcurrentMixedOps", testConcurrentMixedOps},
	}
}

// Many goroutines share one Store, each running a random mix of every operation on keys of its
// own and on shared ones; run with -race this finds unsynchronised state in the store. Each
// goroutine then checks that its own keys ended as it left them.
func testConcurrentMixedOps(e *env) {
	st := e.open()
	const workers, ops = 16, 40
	var wg sync.WaitGroup
	expected := func(err error) bool {
		return err == nil || errors.Is(err, kvstore.ErrKeyNotFound) || errors.Is(err, kvstore.ErrKeyExists) ||
			errors.Is(err, kvstore.ErrKeyModified)
	}
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			own := map[string]string{} // this worker's keys and their last values ("" = absent)
			for i := range ops {
				mine := e.key(fmt.Sprintf("w%d/k%d", w, rng.IntN(4)))
				shared := e.key(fmt.Sprintf("shared/k%d", rng.IntN(4)))
				val := fmt.Sprintf("w%d-%d", w, i)
				var err error
				switch rng.IntN(10) {
				case 0:
					err = st.Put(e.ctx, mine, []byte(val), nil)
					if err == nil {
						own[mine] = val
					}
				case 1:
					err = st.Delete(e.ctx, mine)
					if err == nil {
						own[mine] = ""
					}
				case 2:
					var p *kvstore.KVPair
					if p, err = st.Get(e.ctx, mine); err == nil && string(p.Value) != own[mine] {
						e.Errorf("worker %d: Get(%s) = %q, it wrote %q", w, mine, p.Value, own[mine])
					}
				case 3:
					var ok bool
					var p *kvstore.KVPair
					if p, err = st.Get(e.ctx, shared); err == nil {
						ok, _, err = st.AtomicPut(e.ctx, shared, []byte(val), p, nil)
					} else if errors.Is(err, kvstore.ErrKeyNotFound) {
						ok, _, err = st.AtomicPut(e.ctx, shared, []byte(val), nil, nil)
					}
					_ = ok
				case 4:
					_, err = st.List(e.ctx, e.key("shared"))
				case 5:
					_, err = st.Exists(e.ctx, shared)
				case 6:
					err = st.Put(e.ctx, shared, []byte(val), nil)
				case 7:
					var p *kvstore.KVPair
					if p, err = st.Get(e.ctx, shared); err == nil {
						_, err = st.AtomicDelete(e.ctx, shared, p)
					}
				case 8:
					ctx, cancel := context.WithCancel(e.ctx)
					var ch <-chan *kvstore.KVPair
					if ch, err = st.Watch(ctx, shared); err == nil {
						<-ch // the first event: the current state
					}
					cancel()
				case 9:
					ctx, cancel := context.WithCancel(e.ctx)
					var ch <-chan []*kvstore.KVPair
					if ch, err = st.WatchTree(ctx, e.key("shared")); err == nil {
						<-ch
					}
					cancel()
				}
				if !expected(err) {
					e.Errorf("worker %d op %d: %v", w, i, err)
				}
			}
			for k, v := range own {
				p, err := st.Get(e.ctx, k)
				switch {
				case v == "" && !errors.Is(err, kvstore.ErrKeyNotFound):
					e.Errorf("worker %d: %s should be deleted, Get = %s, %v", w, k, showPair(p), err)
				case v != "" && (err != nil || string(p.Value) != v):
					e.Errorf("worker %d: %s should be %q, Get = %s, %v", w, k, v, showPair(p), err)
				}
			}
		})
	}
	// A lock taken and released meanwhile on the same store.
	wg.Go(func() {
		l, err := st.NewLock(e.ctx, e.key("lock"), &kvstore.LockOptions{Value: []byte("x"), TTL: e.ttl()})
		if err != nil {
			e.Errorf("NewLock: %v", err)
			return
		}
		for range 3 {
			if _, err := l.Lock(e.ctx); err != nil {
				e.Errorf("Lock: %v", err)
				return
			}
			if err := l.Unlock(e.ctx); err != nil {
				e.Errorf("Unlock: %v", err)
			}
		}
	})
	wg.Wait()
}
