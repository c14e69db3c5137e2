// Package consulcatalog maps service endpoints to instances of Consul's service catalog
// (kvstore.Catalog), so that Consul's own clients — catalog and health APIs, DNS — find them.
//
// An instance's ID is kvop-<service>-<address>:<port>; its meta records where it comes from
// (external-source=kubernetes, the namespace and pod, as consul-k8s does) and the writer's owner,
// so that a writer deletes only what it wrote.
package consulcatalog

import (
	"regexp"
	"slices"

	"github.com/kvop/kvop/pkg/discovery"
	"github.com/kvop/kvop/pkg/kvstore"
)

// Meta keys kvop sets.
const (
	MetaExternalSource = "external-source"
	MetaNamespace      = "k8s-namespace"
	MetaPod            = "pod-name"
	MetaOwner          = "kvop-owner"
	ExternalSource     = "kubernetes"
)

// metaKey is what Consul accepts as a meta key (and "consul-" is reserved).
var metaKey = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ValidMetaKey reports whether Consul accepts k as a meta key.
func ValidMetaKey(k string) bool {
	return metaKey.MatchString(k) && !(len(k) >= 7 && k[:7] == "consul-")
}

// ID returns the instance ID of e.
func ID(e discovery.Entry) string { return "kvop-" + e.Service + "-" + e.Endpoint() }

// Service returns the catalog instance of e with tags. Metadata keys Consul would refuse are
// left out (they stay in the Registration).
func Service(e discovery.Entry, tags []string) kvstore.CatalogService {
	meta := map[string]string{}
	for k, v := range e.Metadata {
		if ValidMetaKey(k) {
			meta[k] = v
		}
	}
	meta[MetaExternalSource] = ExternalSource
	meta[MetaNamespace] = e.Namespace
	meta[MetaPod] = e.Pod
	meta[MetaOwner] = e.Owner
	return kvstore.CatalogService{ID: ID(e), Name: e.Service, Address: e.Address, Port: e.Port,
		Tags: slices.Clone(tags), Meta: meta}
}
