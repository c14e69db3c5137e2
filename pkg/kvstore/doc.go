// Package kvstore is one Go API over key/value stores — Consul, etcd (v3, and the legacy v2
// API), ZooKeeper and an embedded BoltDB file — with the same behaviour on every backend.
//
// Open a store with New, after importing the backends you want (or all of them):
//
//	import _ "github.com/kvop/kvop/pkg/kvstore/all"
//
//	store, err := kvstore.New(ctx, kvstore.Etcd, []string{"127.0.0.1:2379"}, nil)
//
// # Same behaviour
//
// "Same behaviour" means that a program written against Store cannot tell the backends apart,
// except by the TTL bound below. Every backend:
//
//   - treats "/a/b/", "a/b" and "/a/b" as one key and returns keys without a leading or trailing
//     "/" (see NormalizeKey); an empty value round-trips as empty, not as absent;
//   - makes Delete and DeleteTree idempotent; List(dir) returns every key strictly below dir at
//     any depth, sorted, never dir itself, and ErrKeyNotFound when there is none;
//   - offers compare-and-swap: AtomicPut with a nil previous creates only if absent
//     (ErrKeyExists), with previous only if LastIndex still matches (ErrKeyModified, or
//     ErrKeyNotFound when the key is gone); of N concurrent racers exactly one wins;
//   - sends the current state first on Watch (the pair, or nil when absent) and WatchTree (the
//     full list), then an event after every change — a deletion is a nil pair — where rapid
//     changes may coalesce but the latest state is never lost; channels close when ctx is done
//     and when the store is closed;
//   - expires TTL keys that are not refreshed within its bound, also when the writing process
//     dies, and keeps KeepAlive keys alive until Delete, Close, or the process dies;
//   - gives a lock to at most one holder at a time, across clients and processes (BoltDB: within
//     the process that owns the file); Unlock wakes a waiter at once (watch-driven); a holder
//     that dies loses the lock within its TTL bound, and a holder whose lock is lost — session
//     expired, key deleted — sees its Lock channel closed.
//
// The conformance suite in package kvtest checks each of these lines on every backend, nothing
// skipped.
//
// # Details every backend shares
//
//   - A key and a directory may share a name: "a" and "a/b" can both hold values. A path that is
//     only a parent of keys ("a" when only "a/b" exists) is not a key: Get says ErrKeyNotFound,
//     Exists says false, List never returns it, and Watch("a") sees nil.
//   - LastIndex never repeats for a key, even after it is deleted and created again, so a stale
//     previous can never win an AtomicPut or AtomicDelete.
//   - A KeepAlive refresh is not a change: it neither moves LastIndex nor sends a Watch event.
//     A Put without TTL (or a Delete) ends the keep-alive and the expiry of that key.
//   - Locks: while held, Get(lockKey) returns LockOptions.Value, so followers can read who holds
//     it, and its LastIndex stays the same for the whole tenure (refreshes are not changes) —
//     pkg/leadership uses it as the fencing term; after Unlock the key is absent. Internal bookkeeping (sessions, queues) is never visible
//     through List or WatchTree of the user's keys. The ctx given to Lock bounds only the wait:
//     a held lock outlives it until Unlock, loss, or Close. A Locker can be locked again after
//     Unlock. Unlock of a Locker that never locked returns ErrNotLocked; after a loss it returns
//     nil. The lost channel closes on loss, on Unlock, and on Close.
//   - Watch and WatchTree never miss the last change: a backend re-reads after reconnecting and
//     sends the state if it differs from the last one sent.
//
// # TTL bounds
//
// A TTL key (or the lock of a dead holder) is gone within this time after its last write
// (TTLBound computes it):
//
//	backend    bound                       why
//	etcd       TTL + 1s                    leases; the server grants at least ~2s
//	etcdv2     TTL + 1s                    native TTL keys
//	boltdb     TTL + 1s                    expiry stored with the value; an expired key is gone
//	                                       after reopen, even if the process died meanwhile
//	zookeeper  TTL + session timeout       ephemeral nodes plus client-side expiry
//	consul     2 × max(TTL, 10s) + 1s      sessions: Consul expires them up to 2 × TTL, and
//	                                       the TTL floor is the server's session_ttl_min (10s)
//
// # Errors
//
// Errors are *Error values that carry the backend, operation and key, and wrap the sentinel
// errors (ErrKeyNotFound, ErrNotReachable, ...): compare them with errors.Is. Stores never panic
// on bad input and never return a client library's error unwrapped.
//
// # Adding a backend
//
// Implement Store in a package of its own that imports only kvstore and its client library,
// call Register from its init(), add it to package all, and run the conformance suite from its
// tests:
//
//	func TestMain(m *testing.M) { kvtest.Main(m) }
//
//	func TestConformance(t *testing.T) {
//		srv := testservers.Etcd(t)
//		kvtest.Run(t, kvtest.Suite{Backend: kvstore.Etcd, Addrs: srv.Endpoints()})
//	}
package kvstore
