// Command coredns is CoreDNS with the few plugins kvop's tests use, built from the Go module
// proxy, so that the skydns format of Registrations is proven against a real resolver.
//
// Upstream's main (coredns.go) imports core/plugin, which links every plugin (cloud DNS
// providers, Kubernetes, ...) and takes far longer to build; a plugin only needs its package
// imported to register itself, and the server orders the ones a Corefile uses by upstream's
// directive list (core/dnsserver/zdirectives.go) either way.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver" // the DNS server type and its directive order
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/etcd"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/whoami"
)

func main() { coremain.Run() }
