// Package etcdv2 is the kvstore backend for the legacy etcd v2 API (etcd before 3.6, started
// with --enable-v2), on go.etcd.io/etcd/client/v2. Import it for its side effect:
//
//	import _ "github.com/kvop/kvop/pkg/kvstore/etcdv2"
//
//	store, err := kvstore.New(ctx, kvstore.EtcdV2, []string{"127.0.0.1:2379"}, nil)
//
// Addresses are "host:port" (http, or https with Config.TLS); Config.Username and Password
// use v2 auth (HTTP basic auth). Config.ConnectionTimeout bounds every request; Open reads
// once with it, so an unreachable server fails there with ErrNotReachable and refused
// credentials (or a refused TLS identity) with ErrAuthFailed.
//
// # Layout
//
// In v2 a node is either a directory or a value, never both, yet "a" and "a/b" must both be
// able to hold values, and a path that is only a parent is not a key. So every key is a
// directory holding its value in a node named "~", below the root directory /kvop:
//
//	key "a"             /kvop/a/~
//	key "a/b"           /kvop/a/b/~
//	key "_x/~y"         /kvop/~_x/~~y/~
//
// Each key segment that starts with "_" or "~" gets one more "~" in front: "_" because v2
// hides such nodes from listings and recursive watches, "~" so that no segment is ever the
// bare "~" and the escape can be undone. Keys must be valid UTF-8 (v2 returns node names as
// JSON strings); others fail with ErrInvalidKey.
//
// List(dir) reads /kvop/<dir> recursively and returns the "~" nodes strictly below it, sorted
// by key. DeleteTree(dir) deletes every child of /kvop/<dir> except its "~". Delete removes the
// "~" node and then the directories it left empty, each with a delete that v2 refuses for a
// non-empty directory, so a concurrent writer never loses a key to the clean-up.
//
// Values are stored as "=" followed by the bytes when they are UTF-8, else as "@" followed by
// their base64 (v2 values are JSON strings too). LastIndex is the node's ModifiedIndex: the
// etcd index of its last write, unique across the store, so it never repeats for a key.
// AtomicPut and AtomicDelete compare on it (prevIndex), AtomicPut with nil previous creates
// with prevExist=false.
//
// # TTL
//
// TTL keys use v2's native TTL in whole seconds (a TTL is rounded up). The leader expires keys
// about every 500ms, so a key is gone within TTL + 1s of its last write (kvstore.TTLBound),
// also when the writer died. KeepAlive keys are refreshed every TTL/3 in the background. A v2
// refresh notifies no watcher but moves the ModifiedIndex, and a keep-alive refresh must not
// move LastIndex; so the first refresh rewrites the value with its LastIndex spelled out in
// front ("#<index>" then "=..." or "@...", a compare-and-swap that Watch does not report since
// neither value nor LastIndex changed) and later refreshes are plain v2 refreshes. Every
// refresh compares on the ModifiedIndex of the one before, so it never revives a deleted or
// expired key and stops once anyone else wrote the key. A Put without TTL replaces the node,
// and with it the expiry.
//
// # Watches
//
// Watch and WatchTree read the state, send it, and long-poll v2 for the next event after the
// etcd index of that read; after every event they read again and send the state when it
// differs. When the server restarts (v2 keeps its event history in memory) or the history no
// longer reaches back to the index (error 401), they read again and watch from the new index,
// so the latest state is never lost.
//
// # Locks
//
// A lock is its key's own value node holding LockOptions.Value, so Get(lockKey) names the
// holder. Lock creates it with prevExist=false and the lock's TTL (default 15s) — an atomic
// decision of the leader, so two clients never both hold it — and refreshes it as a KeepAlive
// key while held. A waiter watches the node and tries again after each change, so Unlock (a
// compare-and-delete) wakes it at once, and the lock of a dead holder expires within TTL + 1s.
// The lost channel closes when a refresh finds the node deleted or replaced, when the watch of
// the node sees that, when no refresh succeeded for most of a TTL, on Unlock and on Close.
package etcdv2
