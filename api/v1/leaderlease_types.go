package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultLeaderLabel marks the leader pod "true" and the other candidates "false".
const DefaultLeaderLabel = "kvop.io/leader"

// LeaderLeaseSpec describes one election.
type LeaderLeaseSpec struct {
	// EndpointRef names the KVEndpoint (in this namespace) that holds the election key.
	// +required
	EndpointRef LocalObjectReference `json:"endpointRef"`

	// Key is the election key below the endpoint's prefix; default leases/<namespace>/<name>.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.\-/]+$`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(s, s == '.' || s == '..')",message="spec.key must not contain '.' or '..' segments"
	Key string `json:"key,omitempty"`

	// TTL is how long a dead leader keeps the lease.
	// +optional
	// +kubebuilder:default="15s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('2s') && duration(self) <= duration('1h')",message="spec.ttl must be between 2s and 1h"
	TTL *metav1.Duration `json:"ttl,omitempty"`

	// Candidates, when set, makes kvop campaign on behalf of every Ready pod its selector
	// matches (managed mode). Unset, kvop only observes the key, where any process campaigns
	// with the pkg/leadership library or `kvop elect` (observe mode).
	// +optional
	Candidates *Candidates `json:"candidates,omitempty"`

	// LeaderLabel is the label key set to "true" on the leader pod and "false" on the other
	// candidates, so that a Service can select the leader only.
	// +optional
	// +kubebuilder:default="kvop.io/leader"
	// +kubebuilder:validation:MaxLength=316
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`
	LeaderLabel string `json:"leaderLabel,omitempty"`
}

// Candidates selects the pods kvop campaigns for.
type Candidates struct {
	// Selector selects candidate pods in this namespace.
	// +required
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'] && ((e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0)))",message="selector: each matchExpressions operator must be In, NotIn (with values), Exists or DoesNotExist (without values)"
	Selector metav1.LabelSelector `json:"selector"`
}

// LeaderLeaseStatus reports the election.
type LeaderLeaseStatus struct {
	// ObservedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready is True while the election runs against a reachable store.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Leader is the current holder: a pod name in managed mode, the campaigner's node name in
	// observe mode; empty while nobody leads.
	// +optional
	Leader string `json:"leader,omitempty"`

	// LastLeader is the most recent non-empty leader: the same as Leader while someone leads,
	// the last holder while nobody does. Transitions count changes of it, so a leader that
	// loses the lease and wins it back (a new term, e.g. across a restart of kvop) is not a
	// transition.
	// +optional
	LastLeader string `json:"lastLeader,omitempty"`

	// LeaderSince is when the current leader took the lease.
	// +optional
	LeaderSince *metav1.Time `json:"leaderSince,omitempty"`

	// Transitions counts how many times the leader changed.
	// +optional
	Transitions int64 `json:"transitions"`

	// Term is the fencing term of the current leadership: it strictly increases every time
	// leadership changes hands.
	// +optional
	Term int64 `json:"term,omitempty"`

	// Key is the election key in the store (prefix included).
	// +optional
	Key string `json:"key,omitempty"`

	// LeaderLabel is the label key kvop last set on the candidate pods (managed mode). When
	// spec.leaderLabel changes, kvop removes this key from LabelledPods.
	// +optional
	LeaderLabel string `json:"leaderLabel,omitempty"`

	// LabelledPods names the pods that carry LeaderLabel as kvop set it, sorted. A pod that
	// leaves the selector, or every pod when the lease turns to observe mode, has the label
	// removed, so that no Service selecting the leader keeps a pod kvop no longer manages.
	// +optional
	// +listType=set
	LabelledPods []string `json:"labelledPods,omitempty"`
}

// LeaderLease is an election over one key of a KV store; the leader is shown in status and, in
// managed mode, labelled on its pod.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=klease,categories=kvop
// +kubebuilder:printcolumn:name="Leader",type=string,JSONPath=`.status.leader`
// +kubebuilder:printcolumn:name="Term",type=integer,JSONPath=`.status.term`,priority=1
// +kubebuilder:printcolumn:name="Transitions",type=integer,JSONPath=`.status.transitions`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LeaderLease struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   LeaderLeaseSpec   `json:"spec"`
	Status LeaderLeaseStatus `json:"status,omitempty"`
}

// LeaderLeaseList is a list of LeaderLeases.
// +kubebuilder:object:root=true
type LeaderLeaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LeaderLease `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LeaderLease{}, &LeaderLeaseList{})
}
