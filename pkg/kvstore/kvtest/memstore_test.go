package kvtest_test

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
)

// memstore is a small in-memory backend that follows the contract, so that the suite can be
// checked on its own: it must pass on memstore, and fail when a bug is planted in it (see
// mutation). addrs[0] names an in-process namespace; every store opened on it shares the data,
// as clients of one server do.

const memBackend kvstore.Backend = "kvtest-mem"

// mutation, when set (by TestSuiteCatchesBugs in a child process), plants one bug.
var mutation = os.Getenv("KVTEST_MEM_MUTATION")

func init() { kvstore.Register(memBackend, openMem) }

var (
	namespacesMu sync.Mutex
	namespaces   = map[string]*memDB{}
)

func openMem(_ context.Context, addrs []string, _ *kvstore.Config) (kvstore.Store, error) {
	namespacesMu.Lock()
	defer namespacesMu.Unlock()
	db := namespaces[addrs[0]]
	if db == nil {
		db = &memDB{data: map[string]*memEntry{}, changed: make(chan struct{})}
		namespaces[addrs[0]] = db
	}
	s := &memStore{db: db, done: make(chan struct{}), locks: map[*memLocker]bool{}}
	if mutation == "leak-goroutine" {
		go func() { <-make(chan struct{}) }() // a background loop that Close forgets to end
	}
	return s, nil
}

type memEntry struct {
	value   []byte
	index   uint64
	expires time.Time     // zero: no expiry
	keeper  *memStore     // KeepAlive: no expiry while this store is open
	ttl     time.Duration // to start the expiry when the keeper closes
}

type memDB struct {
	mu      sync.Mutex
	data    map[string]*memEntry
	seq     uint64
	changed chan struct{} // closed and replaced on every change: a broadcast
}

// bump tells every waiter that something changed; db.mu is held.
func (db *memDB) bump() {
	close(db.changed)
	db.changed = make(chan struct{})
}

// live returns the entry at k unless it is absent or expired; db.mu is held.
func (db *memDB) live(k string) *memEntry {
	e := db.data[k]
	if e == nil || (e.keeper == nil && !e.expires.IsZero() && !time.Now().Before(e.expires)) {
		return nil
	}
	return e
}

// expireAt removes e at its deadline (unless it was replaced or kept alive meanwhile), so
// that watchers hear of the expiry.
func (db *memDB) expireAt(k string, e *memEntry) {
	time.AfterFunc(time.Until(e.expires), func() {
		db.mu.Lock()
		defer db.mu.Unlock()
		if db.data[k] == e && e.keeper == nil {
			delete(db.data, k)
			db.bump()
		}
	})
}

// write stores value at k; db.mu is held.
func (db *memDB) write(s *memStore, k string, value []byte, opts *kvstore.WriteOptions) *memEntry {
	db.seq++
	e := &memEntry{value: bytes.Clone(value), index: db.seq}
	if mutation == "reuse-index" {
		e.index = 1
		if old := db.live(k); old != nil {
			e.index = old.index + 1
		}
	}
	if opts != nil && opts.TTL > 0 && mutation != "ttl-ignored" {
		e.ttl = opts.TTL
		if opts.KeepAlive && mutation != "keepalive-ignored" {
			e.keeper = s
		} else {
			e.expires = time.Now().Add(opts.TTL)
			db.expireAt(k, e)
		}
	}
	db.data[k] = e
	if mutation == "empty-as-absent" && len(value) == 0 {
		delete(db.data, k)
	}
	db.bump()
	return e
}

func pairOf(k string, e *memEntry) *kvstore.KVPair {
	if e == nil {
		return nil
	}
	return &kvstore.KVPair{Key: k, Value: bytes.Clone(e.value), LastIndex: e.index}
}

// list returns the live keys below dir; db.mu is held.
func (db *memDB) list(dir string) []*kvstore.KVPair {
	out := []*kvstore.KVPair{}
	for k := range db.data {
		below := kvstore.IsBelow(k, dir)
		if mutation == "prefix-sibling" {
			below = strings.HasPrefix(k, dir) && k != dir
		}
		if e := db.live(k); e != nil && below {
			out = append(out, pairOf(k, e))
		}
	}
	slices.SortFunc(out, func(a, b *kvstore.KVPair) int { return strings.Compare(a.Key, b.Key) })
	if mutation == "unsorted-list" {
		slices.Reverse(out)
	}
	return out
}

type memStore struct {
	db     *memDB
	mu     sync.Mutex
	closed bool
	done   chan struct{}
	locks  map[*memLocker]bool
}

func fail(op, key string, err error) error { return kvstore.Wrap(memBackend, op, key, err) }

// begin checks the store and the key, and returns the normalised key.
func (s *memStore) begin(op, key string) (string, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return "", fail(op, key, kvstore.ErrClosed)
	}
	k, err := kvstore.NormalizeKey(key)
	if err != nil {
		return "", fail(op, "", err)
	}
	return k, nil
}

func (s *memStore) Put(_ context.Context, key string, value []byte, opts *kvstore.WriteOptions) error {
	k, err := s.begin("put", key)
	if err != nil {
		return err
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	s.db.write(s, k, value, opts)
	return nil
}

func (s *memStore) Get(_ context.Context, key string) (*kvstore.KVPair, error) {
	k, err := s.begin("get", key)
	if err != nil {
		return nil, err
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if e := s.db.live(k); e != nil {
		return pairOf(k, e), nil
	}
	return nil, fail("get", k, kvstore.ErrKeyNotFound)
}

func (s *memStore) Delete(_ context.Context, key string) error {
	k, err := s.begin("delete", key)
	if err != nil {
		return err
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if _, ok := s.db.data[k]; ok {
		delete(s.db.data, k)
		s.db.bump()
	}
	return nil
}

func (s *memStore) Exists(_ context.Context, key string) (bool, error) {
	k, err := s.begin("exists", key)
	if err != nil {
		return false, err
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	return s.db.live(k) != nil, nil
}

func (s *memStore) List(_ context.Context, dir string) ([]*kvstore.KVPair, error) {
	d, err := s.begin("list", dir)
	if err != nil {
		return nil, err
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if l := s.db.list(d); len(l) > 0 {
		return l, nil
	}
	return nil, fail("list", d, kvstore.ErrKeyNotFound)
}

func (s *memStore) DeleteTree(_ context.Context, dir string) error {
	d, err := s.begin("deletetree", dir)
	if err != nil {
		return err
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	for k := range s.db.data {
		if kvstore.IsBelow(k, d) {
			delete(s.db.data, k)
		}
	}
	s.db.bump()
	return nil
}

func (s *memStore) AtomicPut(_ context.Context, key string, value []byte, previous *kvstore.KVPair, opts *kvstore.WriteOptions) (bool, *kvstore.KVPair, error) {
	k, err := s.begin("atomicput", key)
	if err != nil {
		return false, nil, err
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	cur := s.db.live(k)
	switch {
	case previous == nil && cur != nil:
		return false, nil, fail("atomicput", k, kvstore.ErrKeyExists)
	case previous != nil && cur == nil:
		return false, nil, fail("atomicput", k, kvstore.ErrKeyNotFound)
	case previous != nil && cur.index != previous.LastIndex && mutation != "cas-ignores-index":
		return false, nil, fail("atomicput", k, kvstore.ErrKeyModified)
	}
	return true, pairOf(k, s.db.write(s, k, value, opts)), nil
}

func (s *memStore) AtomicDelete(_ context.Context, key string, previous *kvstore.KVPair) (bool, error) {
	k, err := s.begin("atomicdelete", key)
	if err != nil {
		return false, err
	}
	if previous == nil {
		return false, fail("atomicdelete", k, kvstore.ErrPreviousNotSpecified)
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	cur := s.db.live(k)
	switch {
	case cur == nil:
		return false, fail("atomicdelete", k, kvstore.ErrKeyNotFound)
	case cur.index != previous.LastIndex:
		return false, fail("atomicdelete", k, kvstore.ErrKeyModified)
	}
	delete(s.db.data, k)
	s.db.bump()
	return true, nil
}

// follow runs a watch: it sends read() whenever it differs from what was sent last.
func follow[T any](ctx context.Context, s *memStore, read func() T, same func(a, b T) bool) <-chan T {
	ch := make(chan T)
	go func() {
		defer close(ch)
		var last T
		first := true
		stop := ctx.Done()
		if mutation == "watch-ignores-cancel" {
			stop = nil
		}
		for {
			s.db.mu.Lock()
			wait := s.db.changed
			cur := read()
			s.db.mu.Unlock()
			if first || !same(cur, last) {
				select {
				case ch <- cur:
				case <-stop:
					return
				case <-s.done:
					return
				}
				last, first = cur, false
			}
			select {
			case <-wait:
			case <-stop:
				return
			case <-s.done:
				return
			}
		}
	}()
	return ch
}

func samePair(a, b *kvstore.KVPair) bool {
	if a == nil || b == nil {
		return a == b || (mutation == "no-delete-event" && b == nil)
	}
	return a.LastIndex == b.LastIndex
}

func (s *memStore) Watch(ctx context.Context, key string) (<-chan *kvstore.KVPair, error) {
	k, err := s.begin("watch", key)
	if err != nil {
		return nil, err
	}
	return follow(ctx, s, func() *kvstore.KVPair { return pairOf(k, s.db.live(k)) }, samePair), nil
}

func (s *memStore) WatchTree(ctx context.Context, dir string) (<-chan []*kvstore.KVPair, error) {
	d, err := s.begin("watchtree", dir)
	if err != nil {
		return nil, err
	}
	return follow(ctx, s, func() []*kvstore.KVPair { return s.db.list(d) }, func(a, b []*kvstore.KVPair) bool {
		return slices.EqualFunc(a, b, func(x, y *kvstore.KVPair) bool { return x.Key == y.Key && x.LastIndex == y.LastIndex })
	}), nil
}

func (s *memStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	locks := s.locks
	s.mu.Unlock()
	for l := range locks {
		l.release(mutation != "close-keeps-lock")
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	for k, e := range s.db.data {
		if e.keeper == s {
			e.keeper = nil
			e.expires = time.Now().Add(e.ttl)
			s.db.expireAt(k, e)
		}
	}
	s.db.bump()
	return nil
}

type memLocker struct {
	s     *memStore
	key   string
	value []byte
	ttl   time.Duration

	mu      sync.Mutex
	held    *memEntry
	lost    chan struct{}
	wasLost bool
}

func (s *memStore) NewLock(_ context.Context, key string, opts *kvstore.LockOptions) (kvstore.Locker, error) {
	k, err := s.begin("lock", key)
	if err != nil {
		return nil, err
	}
	l := &memLocker{s: s, key: k, ttl: kvstore.DefaultLockTTL}
	if opts != nil {
		l.value = bytes.Clone(opts.Value)
		if opts.TTL > 0 {
			l.ttl = opts.TTL
		}
	}
	return l, nil
}

func (l *memLocker) Lock(ctx context.Context) (<-chan struct{}, error) {
	db := l.s.db
	for {
		if _, err := l.s.begin("lock", l.key); err != nil {
			return nil, err
		}
		db.mu.Lock()
		wait := db.changed
		if db.live(l.key) == nil || mutation == "lock-no-exclusion" {
			e := db.write(l.s, l.key, l.value, &kvstore.WriteOptions{TTL: l.ttl, KeepAlive: true})
			db.mu.Unlock()
			lost := make(chan struct{})
			l.mu.Lock()
			l.held, l.lost, l.wasLost = e, lost, false
			l.mu.Unlock()
			l.s.mu.Lock()
			l.s.locks[l] = true
			l.s.mu.Unlock()
			go l.monitor(e)
			return lost, nil
		}
		db.mu.Unlock()
		var poll <-chan time.Time
		if mutation == "lock-poll" {
			wait, poll = nil, time.After(1500*time.Millisecond)
		}
		select {
		case <-wait:
		case <-poll:
		case <-ctx.Done():
			return nil, fail("lock", l.key, ctx.Err())
		case <-l.s.done:
		}
	}
}

// monitor notices the loss of the lock: its key deleted or replaced behind its back.
func (l *memLocker) monitor(e *memEntry) {
	db := l.s.db
	for {
		db.mu.Lock()
		wait := db.changed
		still := db.data[l.key] == e
		db.mu.Unlock()
		l.mu.Lock()
		mine := l.held == e
		if mine && !still {
			l.held, l.wasLost = nil, true
			close(l.lost)
		}
		l.mu.Unlock()
		if !mine || !still {
			return
		}
		select {
		case <-wait:
		case <-l.s.done:
			return
		}
	}
}

// release gives the lock up (deleting its key if remove) and closes the lost channel.
func (l *memLocker) release(remove bool) bool {
	l.mu.Lock()
	e := l.held
	if e != nil {
		l.held = nil
		close(l.lost)
	}
	l.mu.Unlock()
	if e == nil {
		return false
	}
	db := l.s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.data[l.key] == e {
		if remove {
			delete(db.data, l.key)
		} else {
			e.keeper, e.expires = nil, time.Now().Add(e.ttl)
			db.expireAt(l.key, e)
		}
		db.bump()
	}
	return true
}

func (l *memLocker) Unlock(context.Context) error {
	if l.release(true) {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wasLost {
		l.wasLost = false
		return nil
	}
	return fail("unlock", l.key, kvstore.ErrNotLocked)
}
