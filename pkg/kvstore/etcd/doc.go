// Package etcd is the kvstore backend for etcd's v3 API (go.etcd.io/etcd/client/v3). Importing
// it registers kvstore.Etcd:
//
//	import _ "github.com/kvop/kvop/pkg/kvstore/etcd"
//
//	store, err := kvstore.New(ctx, kvstore.Etcd, []string{"127.0.0.1:2379"}, &kvstore.Config{
//		Username: "kvop", Password: "secret", // optional: etcd auth
//		TLS:      tlsConfig,                   // optional: https endpoints
//	})
//
// # Mapping
//
//   - A key is stored under its normalised form; a directory "a" is the range of keys starting
//     with "a/". List and WatchTree read that range (etcd returns it in key order).
//   - LastIndex is the key's ModRevision, a store-wide revision that never repeats.
//   - AtomicPut and AtomicDelete are transactions comparing the CreateRevision (absent) or the
//     ModRevision (unchanged) of the key.
//   - TTL keys live on a lease of their own; KeepAlive keeps the lease alive, which does not
//     change the key. Watches read, then watch from the next revision.
//   - A lock is its key, created in a transaction on a lease of LockOptions.TTL; waiters watch
//     the key's deletion.
//
// # TTL bound
//
// A TTL key, or the lock of a holder that died, is gone within TTL + 1s of its last write or
// refresh. etcd leases have whole seconds: the TTL is rounded to the nearest second (at least
// 1s), and the server expires leases on a 500ms tick. The server also raises every lease to
// its minimum TTL, 1.5 × its election timeout rounded up to a second (2s with the default 1s),
// so TTLs below that minimum last as long as the minimum.
//
// # Connections and errors
//
// Open checks that a server answers within Config.ConnectionTimeout (ErrNotReachable if none
// does, ErrAuthFailed when the user, password or TLS certificate is refused); every request is
// bounded by the same timeout. A lock holder cut off from the servers for its TTL loses the
// lock (its channel closes), since its lease may have expired meanwhile. Watches survive
// disconnections and server restarts without losing the last change.
package etcd
