package testservers

import (
	"testing"
)

// Server is a running test server.
type Server struct {
	*Process
	Addr  string // host:port that clients dial
	TLS   *TLS   // set when started WithTLS: the server's CA and a client certificate
	Token string // Consul management token when started WithConsulACL
	// DNSAddr is the DNS interface (UDP and TCP) of a Consul agent started WithConsulDNS.
	DNSAddr string
}

// Endpoints returns the server's address as the []string that kvstore.New takes.
func (s *Server) Endpoints() []string { return []string{s.Addr} }

// forTest starts a server for one test and stops it when the test ends; a server that cannot
// start fails the test with the reason (for a missing binary: "run `make tools`").
func forTest(t testing.TB, start func(...Option) (*Server, error), opts []Option) *Server {
	t.Helper()
	srv, err := start(opts...)
	if err != nil {
		t.Fatalf("test server: %v", err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// Etcd starts an etcd server (current release, v3 API) for the test.
func Etcd(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return forTest(t, StartEtcd, opts)
}

// EtcdV2 starts an etcd 3.4 server with the legacy v2 API enabled (it serves v3 too).
func EtcdV2(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return forTest(t, StartEtcdV2, opts)
}

// ZooKeeper starts a standalone ZooKeeper server for the test.
func ZooKeeper(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return forTest(t, StartZooKeeper, opts)
}

// Consul starts a single-server Consul agent for the test.
func Consul(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return forTest(t, StartConsul, opts)
}
