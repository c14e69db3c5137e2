package kvstore

import (
	"context"
	"crypto/tls"
	"time"
)

// Backend names a key/value store implementation.
type Backend string

const (
	Consul    Backend = "consul"
	Etcd      Backend = "etcd"   // etcd v3 API
	EtcdV2    Backend = "etcdv2" // legacy etcd v2 API (etcd < 3.6 started with --enable-v2)
	ZooKeeper Backend = "zookeeper"
	BoltDB    Backend = "boltdb" // embedded; addrs[0] is the database file path
)

// Defaults applied by New to a Config.
const (
	DefaultConnectionTimeout = 10 * time.Second
	DefaultBucket            = "kvop"
	DefaultLockTTL           = 15 * time.Second
	DefaultSessionTimeout    = 10 * time.Second
)

// Config configures a store. The zero value (or nil) is valid.
type Config struct {
	ConnectionTimeout time.Duration // dial and per-request timeout; 0 means 10s
	TLS               *tls.Config   // nil means plain text; honoured by every networked backend
	Username          string        // etcd, etcdv2: user; zookeeper: digest auth user
	Password          string
	Token             string // consul: ACL token
	Bucket            string // boltdb: bucket name; "" means "kvop"

	// SessionTimeout is the ZooKeeper session timeout; 0 means 10s. A ZooKeeper TTL key or lock
	// of a dead process lasts up to TTL + SessionTimeout. Other backends ignore it.
	SessionTimeout time.Duration
}

// withDefaults returns a copy of c (which may be nil) with every zero field defaulted.
func (c *Config) withDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.ConnectionTimeout <= 0 {
		out.ConnectionTimeout = DefaultConnectionTimeout
	}
	if out.Bucket == "" {
		out.Bucket = DefaultBucket
	}
	if out.SessionTimeout <= 0 {
		out.SessionTimeout = DefaultSessionTimeout
	}
	return &out
}

// KVPair is a key, its value, and its version.
type KVPair struct {
	Key       string // normalised: no leading or trailing "/"
	Value     []byte
	LastIndex uint64 // grows with every change of this key; what AtomicPut/AtomicDelete compare
}

// WriteOptions tune Put and AtomicPut.
type WriteOptions struct {
	TTL       time.Duration // > 0: the key vanishes when not refreshed for TTL (see the package doc)
	KeepAlive bool          // with TTL: the store refreshes the key in the background until
	// Delete, Close, or the process dies (then it expires as above)
}

// LockOptions tune NewLock.
type LockOptions struct {
	Value []byte        // stored at the lock key while held (e.g. the holder's identity)
	TTL   time.Duration // how long a dead holder keeps the lock; 0 means 15s
}

// Locker is a distributed mutex on one key.
type Locker interface {
	// Lock blocks until the lock is held or ctx is done (then it returns ctx.Err()).
	// The returned channel is closed when the lock is lost (session expired, key deleted).
	Lock(ctx context.Context) (<-chan struct{}, error)
	Unlock(ctx context.Context) error
}

// Store is a key/value store. Every implementation behaves as the package doc describes, which
// the conformance suite in pkg/kvstore/kvtest checks. A Store is safe for concurrent use.
type Store interface {
	// Put writes value at key (creating or replacing it).
	Put(ctx context.Context, key string, value []byte, opts *WriteOptions) error
	// Get returns the pair at key, or ErrKeyNotFound.
	Get(ctx context.Context, key string) (*KVPair, error)
	// Delete removes key; deleting an absent key succeeds.
	Delete(ctx context.Context, key string) error
	// Exists reports whether key is present.
	Exists(ctx context.Context, key string) (bool, error)
	// Watch sends the current pair at key (nil when absent), then the pair after every change
	// (nil after a deletion). The channel closes when ctx is done or the store is closed.
	Watch(ctx context.Context, key string) (<-chan *KVPair, error)
	// WatchTree sends the full List of directory (empty when none), then the full list after
	// every change below it. The channel closes when ctx is done or the store is closed.
	WatchTree(ctx context.Context, directory string) (<-chan []*KVPair, error)
	// NewLock returns a Locker for key; it does not take the lock.
	NewLock(ctx context.Context, key string, opts *LockOptions) (Locker, error)
	// List returns every key strictly below directory at any depth, sorted by key, or
	// ErrKeyNotFound when there is none.
	List(ctx context.Context, directory string) ([]*KVPair, error)
	// DeleteTree removes every key strictly below directory; an empty directory succeeds.
	DeleteTree(ctx context.Context, directory string) error
	// AtomicPut writes key only if it is unchanged since previous (nil previous: only if absent).
	// It returns true and the new pair on success.
	AtomicPut(ctx context.Context, key string, value []byte, previous *KVPair, opts *WriteOptions) (bool, *KVPair, error)
	// AtomicDelete deletes key only if it is unchanged since previous.
	AtomicDelete(ctx context.Context, key string, previous *KVPair) (bool, error)
	// Close releases locks, sessions and keep-alives and ends every watch.
	Close() error
}

// Abandoner is implemented by stores whose Close ends more than the death of the process would:
// ZooKeeper's Close ends its session, which deletes its ephemeral nodes (TTL keys) at once.
// Abandon releases held locks like Close, but lets go of the connection without ending what it
// keeps alive, so TTL keys expire within their bound — as if the process had died — unless
// another store takes them over first. A process that hands its keys to a successor (an
// operator restarting) abandons its stores instead of closing them.
type Abandoner interface {
	Abandon() error
}

// Abandon abandons s when it is an Abandoner and closes it otherwise (for every other backend
// Close already leaves TTL keys to expire).
func Abandon(s Store) error {
	if a, ok := s.(Abandoner); ok {
		return a.Abandon()
	}
	return s.Close()
}
