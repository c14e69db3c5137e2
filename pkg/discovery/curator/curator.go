// Package curator lays service endpoints out as Apache Curator's service discovery
// (curator-x-discovery) does in ZooKeeper, so that Java clients' ServiceDiscovery and
// ServiceProvider find them: one ephemeral node <basePath>/<service>/<id> per instance holding
// the ServiceInstance JSON that Curator's JsonInstanceSerializer reads.
//
// The payload is a map (what a ServiceDiscovery<Map> reads; the "@class" member is Jackson's
// type id for it, as Curator writes it) with the entry's metadata, pod and namespace, and the
// writer's owner under "kvop.io/owner", so that a writer deletes only what it wrote.
package curator

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kvop/kvop/pkg/discovery"
)

// DefaultBasePath is the base path kvop uses when none is given.
const DefaultBasePath = "/services"

// Payload keys kvop sets besides the entry's metadata.
const (
	PayloadClass     = "@class"
	PayloadOwner     = "kvop.io/owner"
	PayloadPod       = "kvop.io/pod"
	PayloadNamespace = "kvop.io/namespace"
	// mapClass is the Jackson type id of the payload: Curator annotates the payload with
	// @JsonTypeInfo(use = CLASS), so a client reading into a Map gets one.
	mapClass = "java.util.LinkedHashMap"
)

// Instance is Curator's ServiceInstance as JSON.
type Instance struct {
	Name                string            `json:"name"`
	ID                  string            `json:"id"`
	Address             string            `json:"address"`
	Port                *int              `json:"port"`
	SSLPort             *int              `json:"sslPort"`
	Payload             map[string]string `json:"payload"`
	RegistrationTimeUTC int64             `json:"registrationTimeUTC"`
	ServiceType         string            `json:"serviceType"`
	URISpec             *URISpec          `json:"uriSpec"`
	Enabled             bool              `json:"enabled"`
}

// URISpec is Curator's UriSpec: a template of literal and variable parts.
type URISpec struct {
	Parts []URIPart `json:"parts"`
}

// URIPart is one part of a URISpec.
type URIPart struct {
	Value    string `json:"value"`
	Variable bool   `json:"variable"`
}

// ParseURISpec parses a template such as "{scheme}://{address}:{port}" as Curator's UriSpec
// constructor does: text in braces is a variable, the rest literal. "" means no spec.
func ParseURISpec(s string) (*URISpec, error) {
	if s == "" {
		return nil, nil
	}
	spec := &URISpec{Parts: []URIPart{}}
	for s != "" {
		open := strings.IndexByte(s, '{')
		if open < 0 {
			spec.Parts = append(spec.Parts, URIPart{Value: s})
			break
		}
		if open > 0 {
			spec.Parts = append(spec.Parts, URIPart{Value: s[:open]})
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("uriSpec %q: unclosed '{'", s)
		}
		spec.Parts = append(spec.Parts, URIPart{Value: s[open+1 : open+end], Variable: true})
		s = s[open+end+1:]
	}
	return spec, nil
}

// ID returns the instance id of an endpoint: its address:port. Curator ids are opaque strings;
// a deterministic one lets a restarted writer find (and take over) its own instances.
func ID(e discovery.Entry) string { return e.Endpoint() }

// Path returns the node of e's instance below basePath.
func Path(basePath string, e discovery.Entry) string {
	return ServiceDir(basePath, e.Service) + "/" + ID(e)
}

// ServiceDir returns the node holding a service's instances.
func ServiceDir(basePath, service string) string {
	return "/" + strings.Trim(basePath, "/") + "/" + service
}

// NewInstance returns the instance of e, registered at since (Curator's registrationTimeUTC,
// milliseconds since the epoch).
func NewInstance(e discovery.Entry, since time.Time, uri *URISpec) Instance {
	payload := map[string]string{}
	for k, v := range e.Metadata {
		payload[k] = v
	}
	payload[PayloadClass] = mapClass
	payload[PayloadOwner] = e.Owner
	payload[PayloadPod] = e.Pod
	payload[PayloadNamespace] = e.Namespace
	port := e.Port
	return Instance{
		Name: e.Service, ID: ID(e), Address: e.Address, Port: &port,
		Payload: payload, RegistrationTimeUTC: since.UnixMilli(),
		ServiceType: "DYNAMIC", URISpec: uri, Enabled: true,
	}
}

// Encode returns the stored JSON of inst (deterministic: struct order, sorted map keys).
func Encode(inst Instance) ([]byte, error) { return json.Marshal(inst) }

// Decode parses a stored instance; it fails for a value that is none.
func Decode(value []byte) (Instance, error) {
	var inst Instance
	if err := json.Unmarshal(value, &inst); err != nil {
		return Instance{}, fmt.Errorf("%w: %v", discovery.ErrInvalidEntry, err)
	}
	if inst.Name == "" || inst.ID == "" {
		return Instance{}, fmt.Errorf("%w: no name or id", discovery.ErrInvalidEntry)
	}
	return inst, nil
}

// Owner returns the writer recorded in inst's payload ("" when none).
func (inst Instance) Owner() string { return inst.Payload[PayloadOwner] }
