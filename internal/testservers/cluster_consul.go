package testservers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ConsulClusterNode returns the node name of member i of a Consul test cluster (sessions are
// bound to the node of the agent that created them).
func ConsulClusterNode(i int) string { return fmt.Sprintf("kvop-%d", i) }

// StartConsulCluster starts n Consul server agents (the release `make tools` builds) that find
// each other by retry_join and bootstrap one raft cluster once all n run. Like StartConsul it
// lowers session_ttl_min to 1 s. Each agent takes about 100 MB.
func StartConsulCluster(n int) (*Cluster, error) {
	bin, err := toolPath("consul", "CONSUL_VERSION", "consul")
	if err != nil {
		return nil, err
	}
	// Per member: http, serf_lan, serf_wan, server (raft and RPC).
	ports, err := freePorts(4 * n)
	if err != nil {
		return nil, err
	}
	procs, err := newMembers("consul", n)
	if err != nil {
		return nil, err
	}
	members := make([]*Server, n)
	for i, p := range procs {
		var join []string
		for j := range n {
			if j != i {
				join = append(join, strconv.Quote(hostPort(ports[4*j+1])))
			}
		}
		if err := os.MkdirAll(filepath.Join(p.DataDir, "config"), 0o755); err != nil {
			stopProcs(procs)
			return nil, err
		}
		cfgPath := filepath.Join(p.DataDir, "config", "agent.hcl")
		cfg := fmt.Sprintf(`node_name        = %q
server           = true
bootstrap_expect = %d
data_dir         = %q
bind_addr        = "127.0.0.1"
advertise_addr   = "127.0.0.1"
client_addr      = "127.0.0.1"
retry_join       = [%s]
retry_interval   = "500ms"
ports {
  http     = %d
  https    = -1
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
# A killed member stays a voter, so that a restarted one simply rejoins (autopilot would
# otherwise remove it from raft once serf declares it failed).
autopilot {
  cleanup_dead_servers = false
}
`, ConsulClusterNode(i), n, filepath.Join(p.DataDir, "data"), strings.Join(join, ", "),
			ports[4*i], ports[4*i+1], ports[4*i+2], ports[4*i+3])
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			stopProcs(procs)
			return nil, err
		}
		addr, node := hostPort(ports[4*i]), ConsulClusterNode(i)
		p.bin = bin
		p.args = []string{"agent", "-config-file", cfgPath}
		p.env = []string{"CHECKPOINT_DISABLE=1"}
		p.ready = func(ctx context.Context) error { return consulMemberReady(ctx, "http://"+addr, node) }
		members[i] = &Server{Process: p, Addr: addr}
	}
	c, err := startMembers("consul", members)
	if err != nil {
		return nil, err
	}
	serverPorts := make(map[string]int, n)
	for i := range n {
		serverPorts[hostPort(ports[4*i+3])] = i
	}
	c.leader = func(ctx context.Context) (int, error) { return consulLeader(ctx, c, serverPorts) }
	return c, nil
}

// consulMemberReady waits for a raft leader and for the agent's own node in the catalog, as
// consulReady does for the single server.
func consulMemberReady(ctx context.Context, url, node string) error {
	c := httpClient(nil)
	leader, err := httpGet(ctx, c, url+"/v1/status/leader", "")
	if err != nil {
		return err
	}
	if strings.Trim(strings.TrimSpace(leader), `"`) == "" {
		return fmt.Errorf("%w: no raft leader", errNotYet)
	}
	body, err := httpGet(ctx, c, url+"/v1/catalog/node/"+node, "")
	if err != nil {
		return err
	}
	if !strings.Contains(body, `"Node"`) {
		return fmt.Errorf("%w: node %s not registered", errNotYet, node)
	}
	return nil
}

// consulLeader asks running members for the raft leader's server address and maps it back to
// a member; a member that has lost its leader answers "" and the next one is asked.
func consulLeader(ctx context.Context, c *Cluster, serverPorts map[string]int) (int, error) {
	hc := httpClient(nil)
	var seen []string
	for _, i := range c.running() {
		body, err := httpGet(ctx, hc, "http://"+c.Members[i].Addr+"/v1/status/leader", "")
		if err != nil {
			seen = append(seen, fmt.Sprintf("%d: %v", i, err))
			continue
		}
		addr := strings.Trim(strings.TrimSpace(body), `"`)
		if l, ok := serverPorts[addr]; ok && c.Members[l].Pid() != 0 {
			return l, nil
		}
		seen = append(seen, fmt.Sprintf("%d: %q", i, addr))
	}
	return -1, fmt.Errorf("%w %v", errNoLeader, seen)
}
