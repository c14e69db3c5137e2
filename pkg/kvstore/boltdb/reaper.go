package boltdb

import (
	"container/heap"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketKey names one key of one bucket of a file.
type bucketKey struct {
	bucket string
	key    string
}

// expiring is a key and the deadline (unix nanoseconds) at which the reaper looks at it.
type expiring struct {
	key string
	at  int64
}

// reaper deletes expired keys at their deadline, so that watchers see them go and the file does
// not keep them. Reads already hide an expired key, so the reaper is about events and space,
// not about correctness of reads.
//
// It holds at most one entry per key: the earliest deadline it was told about. Writers schedule
// after their commit, and concurrent commits may report in either order; keeping the earliest
// means the reaper is never late, only sometimes early, and an early look re-reads the stored
// deadline and reschedules (as a KeepAlive refresh also causes once per TTL).
type reaper struct {
	mu    sync.Mutex // guards items and index
	items expiryHeap
	index map[bucketKey]*expiryItem
	wake  chan struct{} // the earliest deadline moved earlier
	stop  chan struct{}
	done  chan struct{}
}

func (r *reaper) init() {
	r.index = map[bucketKey]*expiryItem{}
	r.wake = make(chan struct{}, 1)
	r.stop = make(chan struct{})
	r.done = make(chan struct{})
}

// schedule asks the reaper to look at bucket/key at deadline at (unix nanoseconds).
func (r *reaper) schedule(bucket, key string, at int64) {
	if at == 0 {
		return
	}
	bk := bucketKey{bucket, key}
	r.mu.Lock()
	it, ok := r.index[bk]
	switch {
	case !ok:
		it = &expiryItem{bk: bk, at: at}
		heap.Push(&r.items, it)
		r.index[bk] = it
	case at < it.at:
		it.at = at
		heap.Fix(&r.items, it.pos)
	default:
		r.mu.Unlock()
		return
	}
	first := r.items[0] == it
	r.mu.Unlock()
	if first {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// next returns the earliest deadline, or 0 when nothing is scheduled.
func (r *reaper) next() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.items) == 0 {
		return 0
	}
	return r.items[0].at
}

// popDue removes and returns every entry due at now, grouped by bucket.
func (r *reaper) popDue(now int64) map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var due map[string][]string
	for len(r.items) > 0 && r.items[0].at <= now {
		it := heap.Pop(&r.items).(*expiryItem)
		delete(r.index, it.bk)
		if due == nil {
			due = map[string][]string{}
		}
		due[it.bk.bucket] = append(due[it.bk.bucket], it.bk.key)
	}
	return due
}

func (r *reaper) shutdown() {
	close(r.stop)
	<-r.done
}

// reapLoop runs for the life of the handle.
func (h *handle) reapLoop() {
	r := &h.reaper
	defer close(r.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if next := r.next(); next != 0 {
			timer.Reset(time.Duration(next - time.Now().UnixNano()))
		} else {
			timer.Stop()
		}
		select {
		case <-r.stop:
			return
		case <-r.wake:
			continue
		case <-timer.C:
		}
		if due := r.popDue(time.Now().UnixNano()); due != nil {
			h.reap(due)
		}
	}
}

// retryReap is how long the reaper waits before retrying after a failed write.
const retryReap = time.Second

// reap deletes the due keys that are still expired; the others were refreshed or rewritten
// and are rescheduled at their stored deadline.
func (h *handle) reap(due map[string][]string) {
	type result struct {
		deleted    map[string][]string
		reschedule map[bucketKey]int64
	}
	var res result
	err := h.mutate(func(tx *bolt.Tx) error {
		res = result{deleted: map[string][]string{}, reschedule: map[bucketKey]int64{}}
		now := time.Now().UnixNano()
		for bucket, keys := range due {
			b := tx.Bucket([]byte(bucket))
			if b == nil {
				continue
			}
			for _, k := range keys {
				raw := b.Get([]byte(k))
				if raw == nil {
					continue
				}
				rec, err := decode(raw)
				if err != nil || rec.expiry == 0 {
					continue
				}
				if !rec.expired(now) {
					res.reschedule[bucketKey{bucket, k}] = rec.expiry
					continue
				}
				if err := needWrite(tx); err != nil {
					return err
				}
				if err := b.Delete([]byte(k)); err != nil {
					return err
				}
				res.deleted[bucket] = append(res.deleted[bucket], k)
			}
		}
		return nil
	})
	if err != nil {
		// The file is failing; try again later rather than spin. Reads keep hiding the keys.
		at := time.Now().Add(retryReap).UnixNano()
		for bucket, keys := range due {
			for _, k := range keys {
				h.reaper.schedule(bucket, k, at)
			}
		}
		return
	}
	for bk, at := range res.reschedule {
		h.reaper.schedule(bk.bucket, bk.key, at)
	}
	for bucket, keys := range res.deleted {
		h.broker.publish(bucket, keys...)
	}
}

// expiryItem is one heap entry; pos is its index in the heap, kept for heap.Fix.
type expiryItem struct {
	bk  bucketKey
	at  int64
	pos int
}

// expiryHeap is a min-heap of expiryItems by deadline.
type expiryHeap []*expiryItem

func (q expiryHeap) Len() int           { return len(q) }
func (q expiryHeap) Less(i, j int) bool { return q[i].at < q[j].at }
func (q expiryHeap) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].pos = i
	q[j].pos = j
}
func (q *expiryHeap) Push(x any) {
	it := x.(*expiryItem)
	it.pos = len(*q)
	*q = append(*q, it)
}
func (q *expiryHeap) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return it
}
