package testservers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// StartCoreDNS starts the CoreDNS that `make tools` builds (see COREDNS_VERSION) serving zone
// from etcd (host:port, plain text) with the etcd plugin, records under /<path> (CoreDNS's
// `path`, e.g. "skydns"). Server.Addr is its DNS address (UDP and TCP).
func StartCoreDNS(etcd, zone, path string) (*Server, error) {
	bin, err := toolPath("coredns", "COREDNS_VERSION", "coredns")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	p, err := newProcess("coredns")
	if err != nil {
		return nil, err
	}
	// ready: /ready answers 200 once every plugin that reports readiness is ready.
	corefile := fmt.Sprintf(`%s:%d {
  etcd %s {
    endpoint http://%s
    path /%s
  }
  ready 127.0.0.1:%d
  errors
}
`, zone, ports[0], zone, etcd, path, ports[1])
	cfgPath := filepath.Join(p.DataDir, "Corefile")
	if err := os.WriteFile(cfgPath, []byte(corefile), 0o644); err != nil {
		return nil, err
	}
	p.bin = bin
	p.args = []string{"-conf", cfgPath}
	httpc := httpClient(nil)
	readyURL := "http://" + hostPort(ports[1]) + "/ready"
	p.ready = func(ctx context.Context) error {
		_, err := httpGet(ctx, httpc, readyURL, "")
		return err
	}
	if err := p.start(); err != nil {
		p.Stop()
		return nil, err
	}
	return &Server{Process: p, Addr: hostPort(ports[0])}, nil
}

// CoreDNS starts CoreDNS for the test (see StartCoreDNS) and stops it when the test ends.
func CoreDNS(t testing.TB, etcd, zone, path string) *Server {
	t.Helper()
	srv, err := StartCoreDNS(etcd, zone, path)
	if err != nil {
		t.Fatalf("test server: %v", err)
	}
	t.Cleanup(srv.Stop)
	return srv
}
