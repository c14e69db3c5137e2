package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Backend names a key/value store.
// +kubebuilder:validation:Enum=consul;etcd;etcdv2;zookeeper;boltdb
type Backend string

// KVEndpointSpec describes how to reach one key/value store.
// +kubebuilder:validation:XValidation:rule="self.backend == 'boltdb' ? !has(self.endpoints) || size(self.endpoints) == 0 : has(self.endpoints) && size(self.endpoints) > 0",message="spec.endpoints is required for every backend but boltdb, and forbidden for boltdb (use spec.path)"
// +kubebuilder:validation:XValidation:rule="self.backend == 'boltdb' ? has(self.path) && size(self.path) > 0 : !has(self.path)",message="spec.path is required for boltdb and only allowed for boltdb"
// +kubebuilder:validation:XValidation:rule="self.backend != 'boltdb' || (!has(self.tls) && !has(self.credentialsSecretRef))",message="boltdb is a local file: spec.tls and spec.credentialsSecretRef do not apply"
type KVEndpointSpec struct {
	// Backend is the kind of store: consul, etcd (v3 API), etcdv2 (legacy v2 API), zookeeper, or
	// boltdb (an embedded file inside the manager pod; needs no server).
	// +required
	Backend Backend `json:"backend"`

	// Endpoints are the servers' host:port addresses; all are used (failover). Required for
	// every backend but boltdb, forbidden for it.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9.\-]+:[0-9]{1,5}$|^\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}$`
	// +kubebuilder:validation:items:MaxLength=260
	Endpoints []string `json:"endpoints,omitempty"`

	// Path is the BoltDB database file inside the manager pod (boltdb only, required there).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path,omitempty"`

	// Prefix is the key prefix every key written through this endpoint goes below.
	// +optional
	// +kubebuilder:default=kvop
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(s, s == '.' || s == '..')",message="spec.prefix must not contain '.' or '..' segments"
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.\-/]*$`
	Prefix string `json:"prefix,omitempty"`

	// ConnectionTimeout bounds dialing and each request.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms') && duration(self) <= duration('5m')",message="spec.connectionTimeout must be between 100ms and 5m"
	ConnectionTimeout *metav1.Duration `json:"connectionTimeout,omitempty"`

	// TLS configures an encrypted connection. Unset means plain text.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// CredentialsSecretRef names a Secret in this namespace with `username` and `password`
	// (etcd, etcdv2, zookeeper digest auth) or `token` (consul ACL token).
	// +optional
	CredentialsSecretRef *LocalObjectReference `json:"credentialsSecretRef,omitempty"`
}

// TLSSpec configures TLS to a backend.
type TLSSpec struct {
	// SecretRef names a Secret with `ca.crt` (the CA to trust) and optionally `tls.crt` and
	// `tls.key` (a client certificate, for mutual TLS). Without it the system roots are trusted.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// ServerName overrides the name checked against the server certificate.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServerName string `json:"serverName,omitempty"`

	// InsecureSkipVerify turns off verification of the server certificate. Only for tests:
	// kvop emits a Warning event while it is set.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// KVEndpointStatus is what kvop last saw of the backend.
type KVEndpointStatus struct {
	// ObservedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready is True when the last probe reached the backend.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// LastProbeTime is when the backend was last probed.
	// +optional
	LastProbeTime *metav1.Time `json:"lastProbeTime,omitempty"`

	// ProbeLatency is how long the last successful probe took.
	// +optional
	ProbeLatency *metav1.Duration `json:"probeLatency,omitempty"`
}

// KVEndpoint is a connection to one key/value store that Registrations and LeaderLeases use.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=kve,categories=kvop
// +kubebuilder:printcolumn:name="Backend",type=string,JSONPath=`.spec.backend`
// +kubebuilder:printcolumn:name="Endpoints",type=string,JSONPath=`.spec.endpoints`
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.spec.path`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Latency",type=string,JSONPath=`.status.probeLatency`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KVEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   KVEndpointSpec   `json:"spec"`
	Status KVEndpointStatus `json:"status,omitempty"`
}

// KVEndpointList is a list of KVEndpoints.
// +kubebuilder:object:root=true
type KVEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KVEndpoint `json:"items"`
}

func init() {
	SchemeBuilder.Register(&KVEndpoint{}, &KVEndpointList{})
}
