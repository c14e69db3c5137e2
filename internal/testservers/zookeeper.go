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

// ZooKeeperTick is the test server's tickTime. Sessions may last from 2 to 300 ticks, so tests
// can use session timeouts from 400 ms up to 60 s.
const ZooKeeperTick = 200 * time.Millisecond

// StartZooKeeper starts Debian's ZooKeeper as a standalone server.
func StartZooKeeper() (*Server, error) {
	jar, err := toolPath("zookeeper", "ZOOKEEPER_DEB_VERSION", "zookeeper.jar")
	if err != nil {
		return nil, err
	}
	java, err := toolPath("zookeeper", "ZOOKEEPER_DEB_VERSION", "java")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	p, err := newProcess("zookeeper")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(p.DataDir, "config"), 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(p.DataDir, "config", "zoo.cfg")
	cfg := fmt.Sprintf(`tickTime=%d
maxSessionTimeout=60000
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
`, ZooKeeperTick.Milliseconds(), filepath.Join(p.DataDir, "data"), ports[0])
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	addr := hostPort(ports[0])
	p.bin = java
	p.args = []string{"-Xmx256m", "-XX:+UseSerialGC", "-cp", jar, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgPath}
	p.ready = func(ctx context.Context) error { return zkOK(ctx, addr) }
	if err := p.start(); err != nil {
		p.Stop()
		return nil, err
	}
	return &Server{Process: p, Addr: addr}, nil
}

// zkOK sends ZooKeeper's "srvr" four-letter word; a server that serves clients names its Mode
// (a running but not yet serving one says so instead).
func zkOK(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("srvr")); err != nil {
		return err
	}
	answer, _ := io.ReadAll(conn)
	if !strings.Contains(string(answer), "Mode: ") {
		return fmt.Errorf("%w: srvr answered %q", errNotYet, answer)
	}
	return nil
}
