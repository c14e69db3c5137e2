// Package boltdb is the embedded kvstore backend: one bbolt file on local disk, no server.
// It is the default backend of kvop; addrs[0] is the database file path and Config.Bucket the
// bucket (default "kvop").
//
//	import _ "github.com/kvop/kvop/pkg/kvstore/boltdb"
//
//	store, err := kvstore.New(ctx, kvstore.BoltDB, []string{"/var/lib/kvop/kv.db"}, nil)
//
// # One process per file
//
// bbolt takes an exclusive flock on the file, so only one process can use it. Within that
// process every store opened on the same path shares one bbolt handle (reference counted,
// closed with the last store), so in-process clients see each other's watches and locks.
// Opening a file that another process holds fails after a short wait (a tenth of
// ConnectionTimeout, between 50ms and 1s) with an error matching both ErrFileLocked and
// kvstore.ErrNotReachable, instead of hanging as bbolt would by default.
//
// # Storage format
//
// Each value is stored behind a 17-byte header: a format byte, LastIndex (big-endian uint64)
// and the expiry deadline (big-endian unix nanoseconds, 0 for none). LastIndex comes from the
// bucket's persistent sequence, bumped by every change, so it never repeats for a key, not even
// after delete and re-create or a reopen.
//
// # TTL bound: TTL + 1s
//
// The expiry deadline is stored with the value. A key is invisible to every read from its
// deadline on; a background reaper deletes it at the deadline and sends the watch events. A key
// whose deadline passed while no process had the file open is deleted when the file is next
// opened, so a process that dies (SIGKILL included) loses its TTL keys and locks by their stored
// deadline. KeepAlive refreshes the deadline every TTL/3 without changing LastIndex and without
// a watch event.
//
// # Watches and locks
//
// Every write through the shared handle notifies an in-process broker; watchers re-read the
// state they watch after each notification, so rapid changes coalesce but the latest state is
// never lost. A lock is a TTL key (LockOptions.TTL, default 15s) at the lock key holding
// LockOptions.Value, kept alive while held; waiters sleep on notifications of that key (and on
// the holder's deadline), so Unlock wakes them at once. Locks exclude each other across all
// stores of the process that owns the file.
//
// # Throughput
//
// An uncontended write is one bbolt transaction; concurrent writers are grouped into shared
// transactions with bbolt's DB.Batch (1ms batch delay), so they share one commit and fsync.
// Refusals and no-ops (a stale AtomicPut, a held lock, deleting an absent key) are decided in
// a read-only transaction and cost no commit. BenchmarkStore compares kvop with bbolt used
// directly and with opening the file per call.
package boltdb
