// Package zookeeper is the kvstore backend for Apache ZooKeeper (3.5 or later), on
// github.com/go-zookeeper/zk. Import it for its side effect and open it with kvstore.New:
//
//	import _ "github.com/kvop/kvop/pkg/kvstore/zookeeper"
//
//	store, err := kvstore.New(ctx, kvstore.ZooKeeper, []string{"zk1:2181", "zk2:2181"},
//		&kvstore.Config{SessionTimeout: 10 * time.Second})
//
// One Store is one ZooKeeper session. New returns once the session is established, or fails
// with ErrNotReachable after Config.ConnectionTimeout (ErrAuthFailed when the server refused
// the TLS client certificate). Config.TLS dials the ensemble's secureClientPort over TLS.
// Config.Username and Password add digest authentication ("digest", "user:password"), and every
// node the store creates then carries an ACL that grants access to that user only: clients
// without those credentials cannot read or change them (ErrAuthFailed). ZooKeeper accepts any
// digest credentials when they are added, so a wrong password shows up only as ErrAuthFailed
// of the operations on nodes that belong to the right one.
//
// # Layout
//
// A key maps to the znode of the same path: "a/b" is /a/b. Parents are created as needed as
// nodes with empty data; they are no keys. A node that holds a value stores a one-byte header
// before it, so an empty value (one byte of data) differs from an implicit parent (none);
// nodes written by other tools without the header read as raw values. Delete and DeleteTree
// remove implicit parents that they leave empty (best effort: a concurrent writer re-creates
// what it needs). Since ZooKeeper owns /zookeeper, and kvop keeps its lock queues in /_kvop
// (/_kvop/locks/<url.PathEscape(key)>/), a key whose first segment is "zookeeper" or starts
// with "_kvop" is stored with "_kvop~" before that segment; no key can reach either subtree.
//
// LastIndex is the node's Mzxid, the id of the transaction that last changed it: global and
// growing, so it never repeats for a key, even after it was deleted and created again.
// AtomicPut and AtomicDelete read the node, compare its Mzxid with previous.LastIndex and then
// write on condition of the version they read. That is two round trips where a client that
// compares versions needs one, and it cannot be shortened by remembering the version that went
// with an Mzxid: ZooKeeper conditions a write on the data version only, versions restart at 0
// when a node is created, so after another client deleted and re-created the key and wrote it
// up to the same version, a set on the remembered version would succeed with a stale previous
// (TestAtomicPutStaleAfterRecreate).
//
// # TTL
//
// A key written with a TTL is an ephemeral node of the writer's session, so it vanishes when
// the writing process dies, once its session expires. While the writer lives, it deletes the
// key TTL after its last write unless it was written again; a KeepAlive key has no such timer
// and lives as long as the session (session pings are no writes: LastIndex does not move).
// The bound after the last write is therefore TTL + session timeout (kvstore.TTLBound). A Put
// without TTL makes the key persistent again; ZooKeeper cannot convert a node, so this and the
// opposite change delete and re-create the node in one transaction. If the session expires
// while the process lives (a long network partition), its TTL keys are gone at once; the store
// creates its KeepAlive keys again in the new session unless another client has written them
// meanwhile.
//
// Ephemeral nodes cannot have children: on ZooKeeper, a TTL key (and a held lock's key) cannot
// have keys below it. Writing below one, or writing a TTL to a key that has keys below it,
// fails with ErrInvalidKey. TTL keys and persistent keys may share a directory.
//
// # Watches
//
// ZooKeeper's watches fire once. Watch keeps one data watch on the key (an existence watch
// while it is absent) and re-arms it after each event; WatchTree keeps a data watch on every
// node below the directory and a child watch on every node, so it sees value changes at any
// depth. Events go through the connection's event callback to the watchers that asked for the
// path, and only watches that fired are armed again. After every reconnect (and a new
// session, which loses every watch) the watchers read again and send the state if it differs.
//
// # Locks
//
// Locks use ZooKeeper's recipe: ephemeral sequential entries in the lock's queue, the lowest
// holds, each waiter watches only its predecessor; the holder writes the lock key as an
// ephemeral node holding LockOptions.Value. A holder that dies loses the lock when its session
// expires, so the bound is the session timeout; LockOptions.TTL has no effect. A holder's lost
// channel closes when its session expires, when its lock key or queue entry is deleted by
// someone else, on Unlock and on Close — and already when the connection has been down for a
// quarter of the session timeout, since by then the server may expire the session (and hand
// the lock on) before the client can hear of it.
package zookeeper
