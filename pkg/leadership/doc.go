// Package leadership runs leader elections on any kvstore.Store: a Candidate campaigns for a key,
// a Follower watches who holds it. It works the same on every backend, because it uses only the
// Store contract (a lock whose loss is reported, and watches that never miss the last change).
//
// # Fencing terms
//
// Every leadership has a term: the LastIndex of the leader key when the leader took it. Backends
// derive LastIndex from a store-wide revision that never repeats (etcd ModRevision, Consul
// ModifyIndex, ZooKeeper mzxid, etcd v2 ModifiedIndex, BoltDB's own counter), and a held lock's
// LastIndex does not move while it is held, so terms strictly increase each time leadership
// changes hands — also when the same node wins again. The term is stored with the leader's
// identity: Get(key) returns the leader's node name as the value and its term as LastIndex, so
// followers and any outside reader see both. Pass the term along with every write the leader
// makes to a downstream system, and let that system refuse writes carrying an older term: that
// is what keeps a paused, deposed leader from doing harm (see Candidate.Term). Terms reset only
// if the store itself loses its data (a wiped etcd, a deleted BoltDB file).
//
// # Timing
//
// After Resign or a cancelled campaign another candidate leads within milliseconds (watch-driven;
// bounded by 1 s). After a leader process dies, its lock outlives it by at most the store's TTL
// bound for ttl (kvstore.TTLBound). A Follower hears of a change as soon as the store's watch
// delivers it.
//
// Node names must be unique among the candidates of one key.
package leadership
