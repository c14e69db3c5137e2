package testservers

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
)

// StartEtcd starts the etcd release that `make tools` builds (see ETCD_VERSION).
func StartEtcd(opts ...Option) (*Server, error) {
	// --unsafe-no-fsync: test data need not survive a machine crash, only a process crash.
	return startEtcd(applyOptions(opts), "ETCD_VERSION", "--unsafe-no-fsync")
}

// StartEtcdV2 starts Debian's etcd 3.4 with --enable-v2, the last series that serves the v2 API.
func StartEtcdV2(opts ...Option) (*Server, error) {
	return startEtcd(applyOptions(opts), "ETCD_DEB_VERSION", "--enable-v2=true")
}

func startEtcd(o options, versionKey string, extra ...string) (*Server, error) {
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
	scheme := "http://"
	if o.tls != nil {
		scheme = "https://"
		extra = append(extra, "--cert-file", o.tls.ServerCertFile, "--key-file", o.tls.ServerKeyFile,
			"--trusted-ca-file", o.tls.CAFile, "--client-cert-auth")
	}
	client, peer := scheme+hostPort(ports[0]), "http://"+hostPort(ports[1])
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
	httpc := httpClient(o.tls)
	p.ready = func(ctx context.Context) error { return etcdHealthy(ctx, httpc, client) }
	if err := p.start(); err != nil {
		p.Stop()
		return nil, err
	}
	return &Server{Process: p, Addr: hostPort(ports[0]), TLS: o.tls}, nil
}

// etcdHealthy asks etcd's /health endpoint, which answers true once a leader serves reads.
func etcdHealthy(ctx context.Context, c *http.Client, url string) error {
	body, err := httpGet(ctx, c, url+"/health", "")
	if err != nil {
		return err
	}
	if !strings.Contains(body, `"health":"true"`) {
		return fmt.Errorf("%w: /health said %s", errNotYet, body)
	}
	return nil
}
