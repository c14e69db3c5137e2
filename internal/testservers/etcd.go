package testservers

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// StartEtcd starts the etcd release that `make tools` builds (see ETCD_VERSION).
func StartEtcd() (*Server, error) {
	// --unsafe-no-fsync: test data need not survive a machine crash, only a process crash.
	return startEtcd("ETCD_VERSION", "--unsafe-no-fsync")
}

// StartEtcdV2 starts Debian's etcd 3.4 with --enable-v2, the last series that serves the v2 API.
func StartEtcdV2() (*Server, error) {
	return startEtcd("ETCD_DEB_VERSION", "--enable-v2=true")
}

func startEtcd(versionKey string, extra ...string) (*Server, error) {
	bin, err := toolPath("etcd", versionKey, "etcd")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	p, err := newProcess("etcd")
	if err != nil {
		return nil, err
	}
	client, peer := "http://"+hostPort(ports[0]), "http://"+hostPort(ports[1])
	p.bin = bin
	p.args = append([]string{
		"--name", "kvop",
		"--data-dir", filepath.Join(p.DataDir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "kvop=" + peer,
		// A single member elects itself fast with short ticks; a restart is ready in milliseconds.
		"--heartbeat-interval", "10", "--election-timeout", "100",
	}, extra...)
	p.ready = func(ctx context.Context) error { return etcdHealthy(ctx, client) }
	if err := p.start(); err != nil {
		p.Stop()
		return nil, err
	}
	return &Server{Process: p, Addr: hostPort(ports[0])}, nil
}

// etcdHealthy asks etcd's /health endpoint, which answers true once a leader serves reads.
func etcdHealthy(ctx context.Context, url string) error {
	body, err := httpGet(ctx, url+"/health")
	if err != nil {
		return err
	}
	if !strings.Contains(body, `"health":"true"`) {
		return fmt.Errorf("%w: /health said %s", errNotYet, body)
	}
	return nil
}
