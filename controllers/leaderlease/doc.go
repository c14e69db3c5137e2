// Package leaderlease reconciles LeaderLeases: managed elections on behalf of candidate pods,
// or following a key that other processes campaign for, with the leader labelled and reported.
//
// # The election runtime
//
// An election outlives any one reconcile, so the controller owns an in-memory runtime (a
// manager Runnable, so that it runs only in the elected kvop replica and ends with the
// manager). It holds one election per LeaderLease, built on the endpoint's pooled store:
//
//   - one leadership.Follower on the key, in both modes. Every change it reports (leader name
//     or term) and every error is fed back to the controller as a GenericEvent through a
//     channel source, so the lease is reconciled at once rather than on a timer;
//   - in managed mode (spec.candidates set), one leadership.Candidate per Ready candidate pod,
//     campaigning under the pod's name. Its campaign is cancelled as soon as the pod is no
//     longer Ready, is terminating or is gone; a cancelled campaign gives the key back at once
//     (pkg/leadership), so a waiting candidate leads within milliseconds, well inside the 2 s
//     the API promises.
//
// An election is started afresh when there is none (kvop started), when the endpoint's store
// was replaced (storepool.Store.Generation changed: the old connection's locks are gone), and
// when spec.key or spec.ttl changed. It is stopped when the endpoint has no open store and when
// the LeaderLease is deleted (the finalizer waits until every campaign has released the key,
// then removes the leader label from the candidate pods).
//
// Reconcile itself stays reentrant: it derives everything it writes (labels, status) from the
// API objects and from what the follower reports now, never from what an earlier reconcile
// left in memory. The runtime is only the set of running goroutines.
//
// # The restart rule
//
// A restart of kvop must not move leadership away from a leader pod that is still Ready. When
// an election starts afresh and status.leader names a pod that is still a Ready candidate,
// that pod campaigns alone first; the other candidates join only once it was elected, once it
// stops being a Ready candidate, or once the backend's bound on a dead holder's lock has
// passed (kvstore.TTLBound for spec.ttl — by then a lock left by the previous kvop process has
// expired, so the old leader could have won it back). Without this rule every candidate would
// race for the key the moment kvop comes back, and any of them could win.
//
// # Labels
//
// In managed mode every pod matching the selector gets spec.leaderLabel: "true" on the pod the
// follower names as leader, "false" on the others (only when the value differs, as a merge
// patch). While nobody holds the lease — the milliseconds of a handover, a restart of kvop, a
// store outage — a Ready candidate's label is left as it is rather than flapped, so a Service
// that selects the leader keeps its endpoint through a kvop restart; a pod that stops being a
// Ready candidate gets "false" at once. Status records the label key and the pods carrying it
// (status.leaderLabel, status.labelledPods), so that kvop takes the label off a pod that leaves
// the selector, off every pod when spec.leaderLabel changes or the lease turns to observe mode
// (which never labels), and off all of them when the LeaderLease is deleted. Pods kvop did not
// label keep whatever they carry, so two LeaderLeases must not share a label key on the same
// pods.
//
// # Status
//
//   - leader, term: the holder the follower reports and its fencing term (the leader key's
//     LastIndex); empty and 0 while nobody holds the lease. While the election is starting and
//     the follower has not read the key yet, the previous values are kept.
//   - lastLeader: the most recent non-empty leader.
//   - transitions: how many times a new non-empty leader differed from lastLeader. A leader
//     that loses the lease and wins it back (a new term of the same pod, e.g. across a kvop
//     restart) is not a transition; the first leader ever is not one either.
//   - leaderSince: when the current term began; cleared while nobody leads.
//   - key: the election key in the store, prefix included.
//
// The Ready condition:
//
//   - True, LeaderElected: someone holds the lease (in both modes).
//   - False, NoLeader: the election runs but nobody holds the lease (no Ready candidate, the
//     restart rule is waiting for the previous leader, or nobody campaigns in observe mode).
//   - False, EndpointNotFound / EndpointNotReady: the KVEndpoint does not exist / has no open
//     store. The election is stopped; status.leader is kept, so that when the store comes back
//     the restart rule gives the lease back to the same pod.
//   - False, Unreachable / AuthFailed / StoreError: the follower's last read of the key
//     failed (status.ReasonFor), so what status shows may be stale; or, while nobody leads,
//     a campaign's last attempt failed (e.g. the backend refuses kvop's writes). Failed
//     campaigns are restarted every few seconds.
//   - False, InvalidSpec: the candidate selector cannot be parsed.
//
// # Events and metrics
//
// A LeaderElected event (related to the leader pod in managed mode) is recorded on every new
// leadership: "pod-b took over from pod-a (term 42)". The counter
// kvop_leader_transitions_total{namespace,lease} counts transitions as status does.
package leaderlease
