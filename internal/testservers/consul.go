package testservers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ConsulNode is the node name of the test agent (sessions are bound to it).
const ConsulNode = "kvop-test"

// StartConsul starts a single Consul server agent (not -dev: its data survives Restart) with
// session_ttl_min lowered to 1 s, so that TTL and lock tests take seconds instead of 20 s.
func StartConsul(opts ...Option) (*Server, error) {
	o := applyOptions(opts)
	bin, err := toolPath("consul", "CONSUL_VERSION", "consul")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	p, err := newProcess("consul")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(p.DataDir, "config"), 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(p.DataDir, "config", "agent.hcl")
	dnsPort, dnsAddr := -1, "" // off unless asked for
	if o.consulDNS {
		dnsPort, dnsAddr = ports[4], hostPort(ports[4])
	}
	// Only one of http and https listens: a TLS server must not also serve plain text.
	httpPorts, scheme := fmt.Sprintf("http     = %d\n  https    = -1", ports[0]), "http://"
	if o.tls != nil {
		httpPorts, scheme = fmt.Sprintf("http     = -1\n  https    = %d", ports[0]), "https://"
	}
	cfg := fmt.Sprintf(`node_name        = %q
server           = true
bootstrap_expect = 1
data_dir         = %q
bind_addr        = "127.0.0.1"
advertise_addr   = "127.0.0.1"
client_addr      = "127.0.0.1"
ports {
  %s
  serf_lan = %d
  serf_wan = %d
  server   = %d
  dns      = %d
  grpc     = -1
  grpc_tls = -1
}
session_ttl_min      = "1s"
disable_update_check = true
performance {
  raft_multiplier = 1
}
%s`, ConsulNode, filepath.Join(p.DataDir, "data"), httpPorts, ports[1], ports[2], ports[3], dnsPort, consulExtraConfig(o))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	addr := hostPort(ports[0])
	p.bin = bin
	p.args = []string{"agent", "-config-file", cfgPath}
	p.env = []string{"CHECKPOINT_DISABLE=1"}
	httpc := httpClient(o.tls)
	p.ready = func(ctx context.Context) error { return consulReady(ctx, httpc, scheme+addr, o.consulACL) }
	if err := p.start(); err != nil {
		p.Stop()
		return nil, err
	}
	return &Server{Process: p, Addr: addr, TLS: o.tls, Token: o.consulACL, DNSAddr: dnsAddr}, nil
}

// consulExtraConfig returns the agent configuration for TLS and ACLs.
func consulExtraConfig(o options) string {
	var b strings.Builder
	if o.tls != nil {
		fmt.Fprintf(&b, `tls {
  defaults {
    ca_file   = %q
    cert_file = %q
    key_file  = %q
  }
  https {
    verify_incoming = true
  }
}
`, o.tls.CAFile, o.tls.ServerCertFile, o.tls.ServerKeyFile)
	}
	if o.consulACL != "" {
		fmt.Fprintf(&b, `acl {
  enabled        = true
  default_policy = "deny"
  tokens {
    initial_management = %q
    agent              = %q
  }
}
`, o.consulACL, o.consulACL)
	}
	return b.String()
}

// consulReady waits for a raft leader and for the agent's own node in the catalog: sessions,
// which TTL keys and locks need, cannot be created before the node is registered.
func consulReady(ctx context.Context, c *http.Client, url, token string) error {
	leader, err := httpGet(ctx, c, url+"/v1/status/leader", token)
	if err != nil {
		return err
	}
	if strings.Trim(strings.TrimSpace(leader), `"`) == "" {
		return fmt.Errorf("%w: no raft leader", errNotYet)
	}
	node, err := httpGet(ctx, c, url+"/v1/catalog/node/"+ConsulNode, token)
	if err != nil {
		return err
	}
	if !strings.Contains(node, `"Node"`) {
		return fmt.Errorf("%w: node %s not registered", errNotYet, ConsulNode)
	}
	return nil
}

// httpGet returns the body of a 200 answer; token, when set, is sent as Consul's ACL token.
func httpGet(ctx context.Context, c *http.Client, url, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%w: GET %s: %s %s", errNotYet, url, resp.Status, body)
	}
	return string(body), err
}

// httpClient returns a client for readiness probes, presenting the test client certificate
// when the server speaks TLS.
func httpClient(ts *TLS) *http.Client {
	if ts == nil {
		return &http.Client{Timeout: 5 * time.Second}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: ts.ClientConfig()}}
}
