package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Format is how a Registration's entries are laid out in the backend.
// +kubebuilder:validation:Enum=kv;skydns;consul-catalog;curator
type Format string

// Formats. kv works on every backend; each native format needs the one backend whose clients
// read it.
const (
	FormatKV            Format = "kv"             // kvop's own JSON entries, every backend
	FormatSkyDNS        Format = "skydns"         // CoreDNS etcd plugin records, etcd only
	FormatConsulCatalog Format = "consul-catalog" // Consul agent services with a TTL check, consul only
	FormatCurator       Format = "curator"        // Apache Curator x-discovery instances, zookeeper only
)

// ReasonFormatNotSupported: the KVEndpoint's backend cannot serve the Registration's format.
const ReasonFormatNotSupported = "FormatNotSupported"

// RegistrationSpec says which pods to register under which service name.
// +kubebuilder:validation:XValidation:rule="has(self.skydns) == (has(self.format) && self.format == 'skydns')",message="spec.skydns is required with format skydns and only allowed with it"
// +kubebuilder:validation:XValidation:rule="!has(self.consulCatalog) || (has(self.format) && self.format == 'consul-catalog')",message="spec.consulCatalog is only allowed with format consul-catalog"
// +kubebuilder:validation:XValidation:rule="!has(self.curator) || (has(self.format) && self.format == 'curator')",message="spec.curator is only allowed with format curator"
// +kubebuilder:validation:XValidation:rule="!has(self.format) || self.format != 'skydns' || !has(self.service) || self.service.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="with format skydns, spec.service must be a DNS label (lower case letters, digits and '-')"
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

	// Metadata is stored with every entry (kv: "metadata"; consul-catalog: service meta, keys
	// Consul accepts only; curator: the payload; skydns has no place for it).
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Metadata map[string]string `json:"metadata,omitempty"`

	// Format is how entries are written: kv (default, kvop's JSON under the endpoint prefix,
	// every backend), skydns (etcd), consul-catalog (consul) or curator (zookeeper). A format
	// the endpoint's backend cannot serve leaves the Registration not Ready (FormatNotSupported).
	// Immutable: entries in the old format would be left behind.
	// +optional
	// +kubebuilder:default=kv
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.format is immutable"
	Format Format `json:"format,omitempty"`

	// SkyDNS configures the skydns format (required with it).
	// +optional
	SkyDNS *SkyDNSSpec `json:"skydns,omitempty"`

	// ConsulCatalog configures the consul-catalog format.
	// +optional
	ConsulCatalog *ConsulCatalogSpec `json:"consulCatalog,omitempty"`

	// Curator configures the curator format.
	// +optional
	Curator *CuratorSpec `json:"curator,omitempty"`
}

// SkyDNSSpec places records where CoreDNS's etcd plugin reads them:
// /<path>/<reversed domain>/<service>/<id>, so that <service>.<domain> resolves to the pods.
// The path is absolute from the etcd root (CoreDNS's `path`), not below the KVEndpoint prefix.
// +kubebuilder:validation:XValidation:rule="self.domain == oldSelf.domain && self.path == oldSelf.path",message="spec.skydns.domain and spec.skydns.path are immutable"
type SkyDNSSpec struct {
	// Domain is the zone CoreDNS serves from etcd (its etcd plugin's zone), e.g. skydns.local.
	// +required
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Domain string `json:"domain"`

	// Path is the etcd plugin's `path` without its slash; default skydns (CoreDNS's default).
	// +optional
	// +kubebuilder:default=skydns
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	Path string `json:"path,omitempty"`

	// TTL is the DNS TTL of the records in seconds (CoreDNS answers with the smaller of it and
	// the remaining etcd lease); default 30.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	TTL int32 `json:"ttl,omitempty"`
}

// ConsulCatalogSpec configures the Consul services of the consul-catalog format.
type ConsulCatalogSpec struct {
	// Tags of every service instance.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=255
	// +listType=atomic
	Tags []string `json:"tags,omitempty"`

	// DeregisterCriticalServiceAfter: Consul removes an instance whose check has been critical
	// this long (kvop stopped refreshing it); default 1m, which is also Consul's minimum.
	// +optional
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('168h')",message="spec.consulCatalog.deregisterCriticalServiceAfter must be between 1m and 168h"
	DeregisterCriticalServiceAfter *metav1.Duration `json:"deregisterCriticalServiceAfter,omitempty"`
}

// CuratorSpec configures the Apache Curator x-discovery layout: ephemeral nodes
// <basePath>/<service>/<id> holding ServiceInstance JSON. The base path is absolute from the
// ZooKeeper root (what the clients' ServiceDiscoveryBuilder.basePath names), not below the
// KVEndpoint prefix.
// +kubebuilder:validation:XValidation:rule="self.basePath == oldSelf.basePath",message="spec.curator.basePath is immutable"
type CuratorSpec struct {
	// BasePath is the discovery base path; default /services.
	// +optional
	// +kubebuilder:default="/services"
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^(/[A-Za-z0-9_.\-]+)+$`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(s, s == '.' || s == '..') && self.split('/')[1] != 'zookeeper' && !self.split('/')[1].startsWith('_kvop')",message="spec.curator.basePath must not contain '.' or '..' segments nor start in /zookeeper or /_kvop (ZooKeeper's and kvop's own trees)"
	BasePath string `json:"basePath,omitempty"`

	// URISpec is the instance's uriSpec template, e.g. "{scheme}://{address}:{port}"; unset
	// means none.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	URISpec string `json:"uriSpec,omitempty"`
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
// +kubebuilder:printcolumn:name="Format",type=string,JSONPath=`.spec.format`
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
