package testservers

// Option changes how a test server is started.
type Option func(*options)

type options struct {
	tls       *TLS
	consulACL string // management token; "" means ACLs off
	consulDNS bool   // serve Consul's DNS interface (Server.DNSAddr)
}

func applyOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithTLS makes the server serve its client port over TLS with ts's server certificate and
// require client certificates signed by ts's CA (mutual TLS) — etcd, Consul and ZooKeeper all do.
func WithTLS(ts *TLS) Option { return func(o *options) { o.tls = ts } }

// WithConsulACL enables Consul's ACL system with default policy deny and managementToken as the
// initial management (and agent) token.
func WithConsulACL(managementToken string) Option {
	return func(o *options) { o.consulACL = managementToken }
}

// WithConsulDNS makes the Consul agent serve its DNS interface on a port of its own
// (Server.DNSAddr), which the test agent otherwise leaves off.
func WithConsulDNS() Option { return func(o *options) { o.consulDNS = true } }
