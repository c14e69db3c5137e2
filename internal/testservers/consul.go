package testservers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// ConsulNode is the node name of the test agent (sessions are bound to it).
const ConsulNode = "kvop-test"

// StartConsul starts a single Consul server agent (not -dev: its data survives Restart) with
// session_ttl_min lowered to 1 s, so that TTL and lock tests take seconds instead of 20 s.
func StartConsul() (*Server, error) {
	bin, err := toolPath("consul", "CONSUL_VERSION", "consul")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
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
	cfg := fmt.Sprintf(`node_name        = %q
server           = true
bootstrap_expect = 1
data_dir         = %q
bind_addr        = "127.0.0.1"
advertise_addr   = "127.0.0.1"
client_addr      = "127.0.0.1"
ports {
  http     = %d
  serf_lan = %d
  serf_wan = %d
  server   = %d
  dns      = -1
  grpc     = -1
  grpc_tls = -1
}
session_ttl_min      = "1s"
disable_update_check = true
performance {
  raft_multiplier = 1
}
`, ConsulNode, filepath.Join(p.DataDir, "data"), ports[0], ports[1], ports[2], ports[3])
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	addr := hostPort(ports[0])
	p.bin = bin
	p.args = []string{"agent", "-config-file", cfgPath}
	p.env = []string{"CHECKPOINT_DISABLE=1"}
	p.ready = func(ctx context.Context) error { return consulReady(ctx, "http://"+addr) }
	if err := p.start(); err != nil {
		p.Stop()
		return nil, err
	}
	return &Server{Process: p, Addr: addr}, nil
}

// consulReady waits for a raft leader and for the agent's own node in the catalog: sessions,
// which TTL keys and locks need, cannot be created before the node is registered.
func consulReady(ctx context.Context, url string) error {
	leader, err := httpGet(ctx, url+"/v1/status/leader")
	if err != nil {
		return err
	}
	if strings.Trim(strings.TrimSpace(leader), `"`) == "" {
		return fmt.Errorf("%w: no raft leader", errNotYet)
	}
	node, err := httpGet(ctx, url+"/v1/catalog/node/"+ConsulNode)
	if err != nil {
		return err
	}
	if !strings.Contains(node, `"Node"`) {
		return fmt.Errorf("%w: node %s not registered", errNotYet, ConsulNode)
	}
	return nil
}

func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
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
