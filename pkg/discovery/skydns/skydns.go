// Package skydns writes service endpoints as the records CoreDNS's etcd plugin serves (the
// SkyDNS layout), so that plain DNS clients find them: A/AAAA and SRV answers for
// <service>.<domain>.
//
// A record lives at /<path>/<reversed domain labels>/<service>/<id> — for path "skydns", domain
// "kvop.local", service "web": /skydns/local/kvop/web/10-0-0-1-8080 — with the JSON value
// {"host","port","ttl"} that the plugin reads. The path is absolute from the etcd root (the
// plugin's `path` option, default /skydns), which the kvstore API cannot name (its keys never
// start with "/"), so Store writes through the etcd client itself.
//
// The plugin ignores JSON fields it does not know; records carry "owner" (and the pod) so that a
// writer deletes only what it wrote, as discovery.Registry.DeregisterOwned does for kv entries.
package skydns

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/kvop/kvop/pkg/discovery"
)

// DefaultPath is CoreDNS's default etcd plugin path.
const DefaultPath = "skydns"

// Record is the value of one SkyDNS record. Host, Port and TTL are what CoreDNS serves; the other
// fields are for the writer (CoreDNS ignores them).
type Record struct {
	Host      string `json:"host"`
	Port      int    `json:"port,omitempty"`
	TTL       uint32 `json:"ttl,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Owner     string `json:"owner,omitempty"`
}

// ServiceDir returns the etcd directory of a service's records (no trailing slash).
func ServiceDir(path, domain, service string) string {
	labels := strings.Split(strings.Trim(strings.ToLower(domain), "."), ".")
	var b strings.Builder
	b.WriteString("/" + strings.Trim(path, "/"))
	for i := len(labels) - 1; i >= 0; i-- {
		if labels[i] != "" {
			b.WriteString("/" + labels[i])
		}
	}
	b.WriteString("/" + strings.ToLower(service))
	return b.String()
}

// ID returns the record's last key segment for an endpoint: a single DNS label, because CoreDNS
// turns the key back into the SRV target name (<id>.<service>.<domain>). Dots and colons of the
// address become dashes: 10.0.0.1:8080 is 10-0-0-1-8080.
func ID(address string, port int) string {
	return strings.NewReplacer(".", "-", ":", "-").Replace(address) + "-" + strconv.Itoa(port)
}

// Key returns where e's record lives.
func Key(path, domain string, e discovery.Entry) string {
	return ServiceDir(path, domain, e.Service) + "/" + ID(e.Address, e.Port)
}

// NewRecord returns the record of e with the DNS TTL ttl (seconds).
func NewRecord(e discovery.Entry, ttl uint32) Record {
	return Record{Host: e.Address, Port: e.Port, TTL: ttl, Pod: e.Pod, Namespace: e.Namespace, Owner: e.Owner}
}

// Encode returns the stored JSON of r (deterministic: struct field order).
func Encode(r Record) ([]byte, error) { return json.Marshal(r) }

// Decode parses a stored record; it fails for values that are no record with an IP host.
func Decode(value []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(value, &r); err != nil {
		return Record{}, fmt.Errorf("%w: %v", discovery.ErrInvalidEntry, err)
	}
	if r.Host == "" {
		return Record{}, fmt.Errorf("%w: no host", discovery.ErrInvalidEntry)
	}
	return r, nil
}
