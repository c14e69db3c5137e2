package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// RegistrationSpec says which pods to register under which service name.
type RegistrationSpec struct {
	// EndpointRef names the KVEndpoint (in this namespace) to register into.
	// +required
	EndpointRef LocalObjectReference `json:"endpointRef"`

	// Service is the service name in the registry; default: the Registration's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9_.\-]*[A-Za-z0-9])?$`
	Service string `json:"service,omitempty"`

	// Selector selects the pods (in this namespace) to register. An empty selector selects
	// every pod of the namespace.
	// +required
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'] && ((e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0)))",message="selector: each matchExpressions operator must be In, NotIn (with values), Exists or DoesNotExist (without values)"
	Selector metav1.LabelSelector `json:"selector"`

	// Port is the port to register: a number, or the name of a container port of the pod.
	// +required
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 && self <= 65535 : self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self) <= 15",message="spec.port must be a port number 1-65535 or a container port name (IANA_SVC_NAME: lower case, at most 15 characters)"
	Port intstr.IntOrString `json:"port"`

	// TTL: an entry expires this long after kvop stops refreshing it (e.g. kvop is gone).
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('2s') && duration(self) <= duration('24h')",message="spec.ttl must be between 2s and 24h"
	TTL *metav1.Duration `json:"ttl,omitempty"`

	// Metadata is stored with every entry.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Metadata map[string]string `json:"metadata,omitempty"`
}

// RegistrationStatus reports what is registered.
type RegistrationStatus struct {
	// ObservedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready is True when every wanted entry is in the store.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Endpoints is the number of entries registered now.
	// +optional
	Endpoints int32 `json:"endpoints"`

	// Service is the service name the entries are registered under.
	// +optional
	Service string `json:"service,omitempty"`
}

// Registration bridges the ready pods that its selector matches into KV discovery: each one is
// an entry <prefix>/services/<service>/<podIP>:<port> kept alive with a TTL.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=kreg,categories=kvop
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.spec.endpointRef.name`
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.status.service`
// +kubebuilder:printcolumn:name="Entries",type=integer,JSONPath=`.status.endpoints`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Registration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RegistrationSpec   `json:"spec"`
	Status RegistrationStatus `json:"status,omitempty"`
}

// RegistrationList is a list of Registrations.
// +kubebuilder:object:root=true
type RegistrationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Registration `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Registration{}, &RegistrationList{})
}
