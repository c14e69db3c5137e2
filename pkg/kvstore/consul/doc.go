// Package consul is the Consul backend of kvstore, on github.com/hashicorp/consul/api.
// Importing it registers kvstore.Consul:
//
//	import _ "github.com/kvop/kvop/pkg/kvstore/consul"
//
//	store, err := kvstore.New(ctx, kvstore.Consul, []string{"127.0.0.1:8500"}, &kvstore.Config{Token: token})
//
// # Connection
//
// addrs are the HTTP(S) addresses of Consul agents ("host:port"); the scheme is https when
// Config.TLS is set (it is used as the client's TLS configuration, client certificates
// included). Requests go to the agent that answered last and move to the next address when an
// agent cannot be reached; a write moves on only when its connection was never made, so a
// write is never applied twice. Every request has a deadline of Config.ConnectionTimeout
// (blocking queries: their wait time plus that), per address tried.
//
// Open checks that an agent answers (and, with a Token, that the ACL system knows it):
// ErrNotReachable when none answers in time, ErrAuthFailed for a refused token or TLS
// certificate. As with the consul CLI, an empty Token falls back to CONSUL_HTTP_TOKEN or
// CONSUL_HTTP_TOKEN_FILE. The token needs key read and write on the keys used, and session
// write on the agents' nodes for TTL keys and locks. Consul hides the keys a token may not
// read, so a List of only such keys says ErrKeyNotFound.
//
// # Mapping
//
// Keys are Consul keys as NormalizeKey writes them. LastIndex is the key's ModifyIndex (a raft
// index: it never repeats). List(dir) reads the prefix "dir/" and keeps the keys strictly
// below dir (never Consul "folder" keys ending in "/"); DeleteTree deletes that prefix.
// Put is one transaction [delete, set]: Consul keeps a key's session across a plain write and
// skips writes that change nothing, so the delete is what makes a plain Put end a key's
// expiry and always move LastIndex. AtomicPut adds a check (check-not-exists, or check-index
// of previous.LastIndex) in front, in the same transaction. AtomicDelete is [check-index,
// delete] (not Consul's delete-cas, which reports success on an absent key).
//
// # TTL keys
//
// A TTL key is bound (transaction [delete, lock]) to a session with behavior "delete", so
// Consul deletes the key when the session expires. The session's TTL is the key's TTL raised
// to the server's session_ttl_min (10 s by default; the store learns a server's floor from its
// first refusal) and capped at Consul's 24 h. A key without KeepAlive has a session of its
// own, and writing it again with the same TTL renews that session (a refresh). KeepAlive keys
// of one TTL share one session per store, renewed in the background every TTL/2 and destroyed
// with its last key: a thousand registrations cost one session, not a thousand. While no
// server answers, the renewal keeps trying (at least every second) until the session is known
// to be gone: a renewal that gets through after a long leader election still saves the keys,
// since the new leader restarts every session's timer. A session renewal is not a write:
// KeepAlive refreshes neither move LastIndex nor wake watchers. A Put without TTL or a Delete
// unbinds the key and lets go of its session.
//
// Bound: Consul expires a session up to 2 × its TTL after the last renewal, so a TTL key that
// is not refreshed is gone within 2 × max(TTL, session_ttl_min) + 1s of its last write:
// 2 × max(TTL, 10s) + 1s with default servers (kvstore.TTLBound). Close stops keep-alives but
// leaves TTL keys to expire within that bound, exactly as if the process had died.
//
// # Locks
//
// A lock is its key acquired by a session of its own (behavior "delete", TTL =
// LockOptions.TTL raised to the floor as above) holding LockOptions.Value. Sessions are
// created with a lock-delay of 1 ms: consul/api omits a zero lock-delay and the server would
// apply its 15 s default, blocking the key for 15 s after every release or expiry. Waiters
// follow the key with blocking queries and try again as soon as it is released or deleted.
// A holder renews its session every TTL/2 and follows the key; the lost channel closes when
// the session is gone, when renewals have failed for a whole TTL (the server may expire it
// from then on), or when the key is deleted or bound to another session. Unlock deletes the
// key if the session still holds it (transaction [check-session, delete]) and then destroys
// the session; Close does the same for every held lock. Releasing the key before the session
// ends means no lock-delay applies, so a waiter takes the lock as soon as its blocking query
// wakes (destroying a session that still holds the key would delete it too, but block it for
// the lock-delay). A waiter refused by a lock-delay (a holder that died or lost its session)
// retries after 2 ms, doubling up to 1 s. A dead holder's lock is gone within the TTL bound
// above.
//
// Sessions carry no health checks (only their TTL), so they outlive the agent they were
// created on as long as they are renewed through another.
package consul
