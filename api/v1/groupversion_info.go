// Package v1 contains the kvop.io/v1 API: KVEndpoint (a connection to a key/value store),
// Registration (ready pods bridged into KV discovery) and LeaderLease (an election over a KV key).
// +kubebuilder:object:generate=true
// +groupName=kvop.io
package v1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of these objects.
	GroupVersion = schema.GroupVersion{Group: "kvop.io", Version: "v1"}

	// SchemeBuilder registers the kinds of this group version.
	//lint:ignore SA1019 the kubebuilder layout: controller-gen and the samples expect it here
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this group version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
