package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Locks follow ZooKeeper's lock recipe in the lock's queue (/_kvop/locks/<escaped key>, a
// container node the server removes once empty): every contender creates an ephemeral
// sequential entry, the lowest entry holds the lock, and every other contender watches only
// the entry just before its own (no herd effect on release). The holder then writes the lock
// key itself as an ephemeral node holding LockOptions.Value, so Get(lockKey) names the holder.
// Both nodes belong to the holder's session: a holder that dies loses the lock when its
// session expires, within the session timeout (LockOptions.TTL does not apply).

type lockSet struct {
	mu   sync.Mutex
	held map[*holding]*locker
}

func (ls *lockSet) init() { ls.held = map[*holding]*locker{} }

func (ls *lockSet) add(h *holding, l *locker) {
	ls.mu.Lock()
	ls.held[h] = l
	ls.mu.Unlock()
}

// lockers returns the lockers that hold a lock now.
func (ls *lockSet) lockers() []*locker {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	out := make([]*locker, 0, len(ls.held))
	for _, l := range ls.held {
		out = append(out, l)
	}
	return out
}

func (ls *lockSet) remove(h *holding) {
	ls.mu.Lock()
	delete(ls.held, h)
	ls.mu.Unlock()
}

// loseAll reports every held lock lost (session gone, store closed).
func (ls *lockSet) loseAll() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for h := range ls.held {
		h.lose()
	}
}

type locker struct {
	s     *Store
	key   string // normalised lock key
	path  string // its znode
	queue string // znode of its queue
	value []byte

	lockMu sync.Mutex // one Lock call at a time
	mu     sync.Mutex
	h      *holding // the current or last holding; nil when unlocked
}

// holding is one tenure of a lock.
type holding struct {
	seq      string // our queue entry
	session  int64  // the session that owns both nodes
	keyCzxid int64  // identifies the lock key node we created

	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{} // closed by Unlock
	stopOnce sync.Once
}

func (h *holding) lose() { h.lostOnce.Do(func() { close(h.lost) }) }

func (h *holding) isLost() bool {
	select {
	case <-h.lost:
		return true
	default:
		return false
	}
}

// NewLock returns a Locker for key; it does not take the lock.
func (s *Store) NewLock(ctx context.Context, key string, opts *kvstore.LockOptions) (kvstore.Locker, error) {
	k, p, err := s.normalize("lock", key)
	if err != nil {
		return nil, err
	}
	l := &locker{s: s, key: k, path: p, queue: lockQueuePath(k)}
	if opts != nil {
		l.value = append([]byte{}, opts.Value...)
	}
	return l, nil
}

// Lock blocks until the lock is held or ctx is done. The returned channel is closed when the
// lock is lost: session expired (or the connection down for a quarter of the session timeout),
// the lock key or the queue entry deleted by someone else, Unlock, or Close.
func (l *locker) Lock(ctx context.Context) (<-chan struct{}, error) {
	l.lockMu.Lock()
	defer l.lockMu.Unlock()
	l.mu.Lock()
	busy := l.h != nil && !l.h.isLost()
	l.mu.Unlock()
	if busy {
		return nil, l.s.fail("lock", l.key, errors.New("this Locker already holds the lock"))
	}
	h, err := l.acquire(ctx)
	if err != nil {
		return nil, l.s.fail("lock", l.key, err)
	}
	l.mu.Lock()
	l.h = h
	l.mu.Unlock()
	return h.lost, nil
}

func (l *locker) acquire(ctx context.Context) (*holding, error) {
	s := l.s
	for {
		seq, err := l.enqueue(ctx)
		if err != nil {
			return nil, err
		}
		session := s.conn.SessionID()
		first, err := l.awaitTurn(ctx, seq)
		if err == nil && !first {
			continue // our entry is gone with an expired session: queue again
		}
		var h *holding
		if err == nil {
			h, err = l.takeKey(ctx, seq, session)
		}
		if err != nil {
			s.spawn(func() { l.dropEntry(seq) })
			return nil, err
		}
		s.locks.add(h, l)
		if !s.spawn(func() { l.monitor(h) }) {
			h.lose()
			return nil, kvstore.ErrClosed
		}
		return h, nil
	}
}

// enqueue creates our entry in the queue, creating the queue first if needed.
func (l *locker) enqueue(ctx context.Context) (string, error) {
	for attempt := 0; ; attempt++ {
		seq, err := l.createEntry(ctx)
		if !errors.Is(err, zk.ErrNoNode) || attempt == 3 {
			return seq, err
		}
		if err := l.s.ensureQueue(ctx, l.queue); err != nil {
			return "", err
		}
	}
}

// createEntry creates an ephemeral sequential entry. The name carries a random prefix, so that
// an entry created by a request whose answer was lost is found again (the client library does
// that); if we stop waiting for the answer, the entry is deleted once it arrives, or it would
// block the queue for as long as our session lives.
func (l *locker) createEntry(ctx context.Context) (string, error) {
	s := l.s
	type result struct {
		path string
		err  error
	}
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	if err := s.awaitReady(ctx, timer.C); err != nil {
		return "", err
	}
	rc := make(chan result, 1)
	if !s.spawn(func() {
		p, err := s.conn.CreateProtectedEphemeralSequential(l.queue+"/lock-", l.value, s.acl())
		rc <- result{p, err}
	}) {
		return "", kvstore.ErrClosed
	}
	abandon := func() {
		s.spawn(func() {
			if r := <-rc; r.err == nil {
				l.dropEntry(r.path)
			}
		})
	}
	select {
	case r := <-rc:
		return r.path, r.err
	case <-ctx.Done():
		abandon()
		return "", ctx.Err()
	case <-timer.C:
		abandon()
		return "", errTimeout
	case <-s.closed:
		return "", kvstore.ErrClosed
	}
}

// ensureQueue creates /_kvop, /_kvop/locks and the queue container as needed.
func (s *Store) ensureQueue(ctx context.Context, queue string) error {
	for _, p := range []string{internalRoot, locksRoot} {
		_, err := s.zcreate(ctx, p, nil, zk.FlagPersistent, sharedACL())
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	err := s.do(ctx, func() error {
		_, err := s.conn.CreateContainer(queue, nil, zk.FlagContainer, s.acl())
		return err
	})
	if errors.Is(err, zk.ErrNodeExists) {
		return nil
	}
	return err
}

// awaitTurn waits until seq is the lowest entry of the queue (true), or gone (false).
func (l *locker) awaitTurn(ctx context.Context, seq string) (bool, error) {
	s := l.s
	name := path.Base(seq)
	for {
		kids, err := s.zchildren(ctx, l.queue)
		if errors.Is(err, zk.ErrNoNode) {
			return false, nil
		}
		var pred string
		if err == nil {
			sort.Slice(kids, func(i, j int) bool { return seqNumber(kids[i]) < seqNumber(kids[j]) })
			i := indexOf(kids, name)
			if i < 0 {
				return false, nil
			}
			if i == 0 {
				return true, nil
			}
			pred = l.queue + "/" + kids[i-1]
		} else if !transient(err) {
			return false, err
		}
		// Subscribe before arming the watch, so that no deletion goes unseen; a session event
		// wakes us too.
		sb := s.hub.add(func(p string) bool { return p == pred })
		wait := err != nil
		if err == nil {
			var exists bool
			exists, _, err = s.zexistsW(ctx, pred)
			wait = err != nil || exists
		}
		if wait {
			var retry <-chan time.Time
			if err != nil {
				retry = time.After(250 * time.Millisecond)
			}
			select {
			case <-sb.wake:
			case <-retry:
			case <-ctx.Done():
			case <-s.closed:
			}
		}
		s.hub.remove(sb)
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if s.isClosed() {
			return false, kvstore.ErrClosed
		}
		if err != nil && !transient(err) {
			return false, err
		}
	}
}

// seqNumber is the sequence number ZooKeeper appended to an entry's name (10 digits).
func seqNumber(name string) int64 {
	if len(name) < 10 {
		return -1
	}
	n, err := strconv.ParseInt(name[len(name)-10:], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// takeKey writes the lock key as an ephemeral node of our session, replacing whatever a
// previous writer left there (the queue says the lock is ours).
func (l *locker) takeKey(ctx context.Context, seq string, session int64) (*holding, error) {
	s := l.s
	data := encodeValue(l.value)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		stat, err := s.zcreateStat(ctx, l.path, data, zk.FlagEphemeral)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			if err := s.ensureParents(ctx, l.path); err != nil {
				return nil, err
			}
			continue
		case errors.Is(err, zk.ErrNodeExists):
			_, cur, err := s.zget(ctx, l.path)
			if errors.Is(err, zk.ErrNoNode) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if cur.NumChildren > 0 {
				return nil, kvstore.Mark(kvstore.ErrInvalidKey, fmt.Errorf(
					"on ZooKeeper a lock key cannot have keys below it (%d children)", cur.NumChildren))
			}
			stat, err = s.zreplace(ctx, l.path, cur.Version, data, zk.FlagEphemeral)
			if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrNodeExists) {
				continue
			}
			if err != nil {
				return nil, err
			}
		case err != nil:
			return nil, err
		}
		return &holding{seq: seq, session: session, keyCzxid: stat.Czxid,
			lost: make(chan struct{}), stop: make(chan struct{})}, nil
	}
	return nil, fmt.Errorf("gave up after %d attempts: the lock key kept changing", maxAttempts)
}

// monitor reports the loss of h: our entry or the lock key deleted or replaced, or the session
// gone (see monitorSession). After a loss it removes what is left of our nodes.
func (l *locker) monitor(h *holding) {
	s := l.s
	sb := s.hub.add(func(p string) bool { return p == h.seq || p == l.path })
	defer s.hub.remove(sb)
	for !h.isLost() {
		if l.lostNow(h) {
			h.lose()
			break
		}
		select {
		case <-sb.wake:
		case <-h.lost:
		case <-h.stop:
			return // Unlock cleans up
		case <-s.closed:
			return // the session ends with the store
		}
	}
	s.locks.remove(h)
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		err := l.release(ctx, h)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-h.stop:
			return
		case <-s.closed:
			return
		case <-time.After(backoff):
		}
	}
}

// lostNow checks (and re-arms watches on) our entry and the lock key. Connection trouble is
// not a loss by itself: monitorSession decides when it has lasted too long.
func (l *locker) lostNow(h *holding) bool {
	s := l.s
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if s.conn.SessionID() != h.session {
		return true
	}
	ok, _, err := s.zexistsW(ctx, h.seq)
	if err != nil {
		return false
	}
	if !ok {
		return true
	}
	ok, stat, err := s.zexistsW(ctx, l.path)
	if err != nil {
		return false
	}
	return !ok || stat.Czxid != h.keyCzxid
}

// release deletes the lock key (if it is still the node we created) and then our entry, which
// wakes the next contender. Nodes of an expired session are gone already.
func (l *locker) release(ctx context.Context, h *holding) error {
	s := l.s
	if s.conn.SessionID() != h.session {
		return nil
	}
	ok, stat, err := s.zexists(ctx, l.path)
	if err != nil {
		return err
	}
	if ok && stat.Czxid == h.keyCzxid {
		err := s.zdelete(ctx, l.path, stat.Version)
		if err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
			return err
		}
	}
	if err := s.zdelete(ctx, h.seq, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	s.prune(ctx, parentPath(l.path))
	return nil
}

// dropEntry deletes a queue entry we no longer wait with.
func (l *locker) dropEntry(seq string) {
	ctx, cancel := context.WithTimeout(context.Background(), l.s.timeout)
	defer cancel()
	_ = l.s.zdelete(ctx, seq, -1)
}

// Unlock releases the lock. It returns ErrNotLocked when this Locker does not hold it, and nil
// after a loss. When ZooKeeper cannot be reached, it returns the error and keeps trying in the
// background (the nodes go with the session at the latest).
func (l *locker) Unlock(ctx context.Context) error {
	l.mu.Lock()
	h := l.h
	l.h = nil
	l.mu.Unlock()
	if h == nil {
		return l.s.fail("unlock", l.key, kvstore.ErrNotLocked)
	}
	wasLost := h.isLost()
	h.stopOnce.Do(func() { close(h.stop) })
	h.lose()
	l.s.locks.remove(h)
	err := l.release(ctx, h)
	if err == nil {
		return nil
	}
	l.s.spawn(func() {
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
			select {
			case <-l.s.closed:
				return
			case <-time.After(backoff):
			}
			rctx, cancel := context.WithTimeout(context.Background(), l.s.timeout)
			err := l.release(rctx, h)
			cancel()
			if err == nil {
				return
			}
		}
	})
	if wasLost {
		return nil
	}
	return l.s.fail("unlock", l.key, err)
}
