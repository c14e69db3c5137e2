package zookeeper

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// TTL keys are ephemeral nodes of the writing store's session, so they vanish within the
// session timeout when the process dies. While the store lives, a timer deletes the key TTL
// after its last write unless the key was written again; KeepAlive keys have no timer: the
// session keeps them (its pings are no writes, so LastIndex does not move), and after a
// session expiry the store creates them again unless someone else wrote the key meanwhile.

type ttlEntry struct {
	path      string
	mzxid     int64 // of this store's last write: the timer only deletes that version
	keepAlive bool
	data      []byte // node data, to re-create a keep-alive key in a new session
	timer     *time.Timer
}

type ttlTable struct {
	mu      sync.Mutex
	entries map[string]*ttlEntry // by znode path
	stopped bool
}

func (t *ttlTable) init() { t.entries = map[string]*ttlEntry{} }

// has reports whether this store keeps a TTL entry for p.
func (t *ttlTable) has(p string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.entries[p] != nil
}

// written records a successful write of p by this store.
func (t *ttlTable) written(s *Store, p string, mzxid int64, ttl time.Duration, keepAlive bool, data []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.entries[p]
	if old != nil && old.mzxid > mzxid {
		return // a later write of this store has already decided
	}
	if old != nil && old.timer != nil {
		old.timer.Stop()
	}
	if ttl <= 0 || t.stopped {
		delete(t.entries, p)
		return
	}
	e := &ttlEntry{path: p, mzxid: mzxid, keepAlive: keepAlive, data: data}
	if !keepAlive {
		e.timer = time.AfterFunc(ttl, func() { s.expire(e) })
	}
	t.entries[p] = e
}

// forget ends the expiry and keep-alive of p (Delete).
func (t *ttlTable) forget(p string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.entries[p]; e != nil {
		if e.timer != nil {
			e.timer.Stop()
		}
		delete(t.entries, p)
	}
}

// forgetBelow forgets every entry below the directory p (DeleteTree).
func (t *ttlTable) forgetBelow(p string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for q, e := range t.entries {
		if strings.HasPrefix(q, p+"/") {
			if e.timer != nil {
				e.timer.Stop()
			}
			delete(t.entries, q)
		}
	}
}

func (t *ttlTable) stopAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	for p, e := range t.entries {
		if e.timer != nil {
			e.timer.Stop()
		}
		delete(t.entries, p)
	}
}

// current reports whether e is still the entry of its path.
func (t *ttlTable) current(e *ttlEntry) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.entries[e.path] == e
}

// expire deletes the key of e if nobody wrote it since: a later write by another client
// governs the key from then on. It retries while ZooKeeper is unreachable.
func (s *Store) expire(e *ttlEntry) {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		if !s.ttls.current(e) || s.expireOnce(e) == nil {
			return
		}
		select {
		case <-s.closed:
			return
		case <-time.After(backoff):
		}
	}
}

// take removes e from the table if it is still the entry of its path.
func (t *ttlTable) take(e *ttlEntry) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries[e.path] != e {
		return false
	}
	delete(t.entries, e.path)
	return true
}

func (s *Store) expireOnce(e *ttlEntry) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	ok, stat, err := s.zexists(ctx, e.path)
	if err != nil {
		return err
	}
	if !s.ttls.take(e) || !ok || stat.Mzxid != e.mzxid {
		return nil // written again meanwhile, or already gone
	}
	err = s.zdelete(ctx, e.path, stat.Version)
	if errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion) {
		return nil
	}
	if err != nil {
		s.ttls.mu.Lock()
		if s.ttls.entries[e.path] == nil && !s.ttls.stopped {
			s.ttls.entries[e.path] = e // try again
		}
		s.ttls.mu.Unlock()
		return err
	}
	s.prune(ctx, parentPath(e.path))
	return nil
}

// recreateKeepAlive creates the keep-alive keys again after the session that owned them
// expired; a key that someone else created meanwhile is theirs now.
func (s *Store) recreateKeepAlive() {
	s.ttls.mu.Lock()
	var todo []*ttlEntry
	for _, e := range s.ttls.entries {
		if e.keepAlive {
			todo = append(todo, e)
		}
	}
	s.ttls.mu.Unlock()
	for _, e := range todo {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		stat, err := s.zcreateStat(ctx, e.path, e.data, zk.FlagEphemeral)
		if errors.Is(err, zk.ErrNoNode) {
			if err = s.ensureParents(ctx, e.path); err == nil {
				stat, err = s.zcreateStat(ctx, e.path, e.data, zk.FlagEphemeral)
			}
		}
		cancel()
		s.ttls.mu.Lock()
		if s.ttls.entries[e.path] == e {
			if err == nil {
				e.mzxid = stat.Mzxid
			} else {
				delete(s.ttls.entries, e.path)
			}
		}
		s.ttls.mu.Unlock()
	}
}
