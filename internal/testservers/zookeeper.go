package testservers

import (
	"context"
	"crypto/tls"
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
// With WithTLS it serves TLS (client certificate required) on the returned address and keeps a
// plain-text port for its own readiness probe only.
func StartZooKeeper(opts ...Option) (*Server, error) {
	o := applyOptions(opts)
	jar, err := toolPath("zookeeper", "ZOOKEEPER_DEB_VERSION", "zookeeper.jar")
	if err != nil {
		return nil, err
	}
	java, err := toolPath("zookeeper", "ZOOKEEPER_DEB_VERSION", "java")
	if err != nil {
		return nil, err
	}
	// hack/tools.sh links the jars the Debian manifest leaves out beside zookeeper.jar.
	classPath := jar
	for _, extra := range []string{"netty-codec.jar", "slf4j-simple.jar"} {
		p, err := toolPath("zookeeper", "ZOOKEEPER_DEB_VERSION", extra)
		if err != nil {
			return nil, err
		}
		classPath += ":" + p
	}
	ports, err := freePorts(2)
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
	addr := hostPort(ports[0])
	if o.tls != nil {
		// ZooKeeper reads PEM key and trust stores since 3.5.5; TLS needs the Netty transport.
		cfg += fmt.Sprintf(`serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
secureClientPort=%d
secureClientPortAddress=127.0.0.1
ssl.keyStore.location=%s
ssl.keyStore.type=PEM
ssl.trustStore.location=%s
ssl.trustStore.type=PEM
ssl.clientAuth=need
`, ports[1], o.tls.ServerPEMFile, o.tls.CAFile)
		addr = hostPort(ports[1])
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	plain := hostPort(ports[0])
	p.bin = java
	p.args = []string{"-Xmx256m", "-XX:+UseSerialGC", "-cp", classPath, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgPath}
	p.ready = func(ctx context.Context) error {
		if err := zkOK(ctx, plain); err != nil {
			return err
		}
		if o.tls != nil {
			return tlsHandshake(ctx, addr, o.tls)
		}
		return nil
	}
	if err := p.start(); err != nil {
		p.Stop()
		return nil, err
	}
	return &Server{Process: p, Addr: addr, TLS: o.tls}, nil
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

// tlsHandshake checks that addr completes a TLS handshake with the test client certificate.
func tlsHandshake(ctx context.Context, addr string, ts *TLS) error {
	d := tls.Dialer{Config: ts.ClientConfig()}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}
