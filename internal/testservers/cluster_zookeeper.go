package testservers

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// StartZooKeeperEnsemble starts an ensemble of n ZooKeeper servers (Debian's ZooKeeper, as
// StartZooKeeper) with myid 1..n, on the same short tickTime as the standalone test server.
func StartZooKeeperEnsemble(n int) (*Cluster, error) {
	classPath, java, err := zookeeperClassPath()
	if err != nil {
		return nil, err
	}
	// Per member: client port, quorum (follower → leader) port, leader election port.
	ports, err := freePorts(3 * n)
	if err != nil {
		return nil, err
	}
	procs, err := newMembers("zookeeper", n)
	if err != nil {
		return nil, err
	}
	servers := joinf(n, "\n", func(i int) string {
		return fmt.Sprintf("server.%d=127.0.0.1:%d:%d", i+1, ports[3*i+1], ports[3*i+2])
	})
	members := make([]*Server, n)
	for i, p := range procs {
		dataDir := filepath.Join(p.DataDir, "data")
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			stopProcs(procs)
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dataDir, "myid"), []byte(fmt.Sprintf("%d\n", i+1)), 0o644); err != nil {
			stopProcs(procs)
			return nil, err
		}
		if err := os.MkdirAll(filepath.Join(p.DataDir, "config"), 0o755); err != nil {
			stopProcs(procs)
			return nil, err
		}
		cfgPath := filepath.Join(p.DataDir, "config", "zoo.cfg")
		// initLimit/syncLimit are in ticks (200 ms): a follower has 2 s to sync with a new leader
		// and is dropped after 1 s of silence, so a killed leader is noticed and replaced fast.
		cfg := fmt.Sprintf(`tickTime=%d
initLimit=10
syncLimit=5
maxSessionTimeout=60000
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
%s
`, ZooKeeperTick.Milliseconds(), dataDir, ports[3*i], servers)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			stopProcs(procs)
			return nil, err
		}
		addr := hostPort(ports[3*i])
		p.bin = java
		p.args = []string{"-Xmx256m", "-XX:+UseSerialGC", "-cp", classPath, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgPath}
		p.ready = func(ctx context.Context) error { return zkOK(ctx, addr) }
		members[i] = &Server{Process: p, Addr: addr}
	}
	c, err := startMembers("zookeeper", members)
	if err != nil {
		return nil, err
	}
	c.leader = func(ctx context.Context) (int, error) { return zkLeader(ctx, c) }
	return c, nil
}

// zookeeperClassPath returns the class path and java binary of the ZooKeeper that `make tools`
// links (the same pieces StartZooKeeper uses).
func zookeeperClassPath() (classPath, java string, err error) {
	jar, err := toolPath("zookeeper", "ZOOKEEPER_DEB_VERSION", "zookeeper.jar")
	if err != nil {
		return "", "", err
	}
	java, err = toolPath("zookeeper", "ZOOKEEPER_DEB_VERSION", "java")
	if err != nil {
		return "", "", err
	}
	classPath = jar
	for _, extra := range []string{"netty-codec.jar", "slf4j-simple.jar"} {
		p, err := toolPath("zookeeper", "ZOOKEEPER_DEB_VERSION", extra)
		if err != nil {
			return "", "", err
		}
		classPath += ":" + p
	}
	return classPath, java, nil
}

// zkLeader asks every running member with the "srvr" four-letter word; the leader says
// "Mode: leader" (the others "follower", or nothing while they look for a leader).
func zkLeader(ctx context.Context, c *Cluster) (int, error) {
	var modes []string
	for _, i := range c.running() {
		answer, err := zkSrvr(ctx, c.Members[i].Addr)
		if err != nil {
			modes = append(modes, fmt.Sprintf("%d: %v", i, err))
			continue
		}
		if strings.Contains(answer, "Mode: leader") {
			return i, nil
		}
		mode := "not serving"
		if _, m, ok := strings.Cut(answer, "Mode: "); ok {
			mode, _, _ = strings.Cut(m, "\n")
		}
		modes = append(modes, fmt.Sprintf("%d: %s", i, mode))
	}
	return -1, fmt.Errorf("%w %v", errNoLeader, modes)
}

func zkSrvr(ctx context.Context, addr string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("srvr")); err != nil {
		return "", err
	}
	answer, err := io.ReadAll(conn)
	return string(answer), err
}
