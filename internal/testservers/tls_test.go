package testservers_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	consulapi "github.com/hashicorp/consul/api"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvop/kvop/internal/testservers"
)

// Each TLS server accepts a client that trusts its CA and presents a client certificate, and
// refuses one that trusts another CA or brings no certificate.

func TestEtcdTLS(t *testing.T) {
	ts := testservers.TLSForTest(t)
	srv := testservers.Etcd(t, testservers.WithTLS(ts))
	other, err := ts.OtherCA()
	if err != nil {
		t.Fatal(err)
	}
	try := func(cfg *tls.Config) error {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"https://" + srv.Addr}, TLS: cfg, DialTimeout: 2 * time.Second})
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = cli.Put(ctx, "k", "v")
		return err
	}
	if err := try(ts.ClientConfig()); err != nil {
		t.Fatalf("right CA and client certificate: %v", err)
	}
	if err := try(other.ClientConfig()); err == nil {
		t.Fatal("a client trusting another CA was served")
	}
	if err := try(ts.CAOnlyConfig()); err == nil {
		t.Fatal("a client without a certificate was served (mutual TLS expected)")
	}
}

func TestConsulTLSAndACL(t *testing.T) {
	ts := testservers.TLSForTest(t)
	const token = "0f4c2a4e-3b1d-4c55-9c1e-6b2f3a1d7e90"
	srv := testservers.Consul(t, testservers.WithTLS(ts), testservers.WithConsulACL(token))
	client := func(cfg *tls.Config, tok string) *consulapi.Client {
		c, err := consulapi.NewClient(&consulapi.Config{
			Address: srv.Addr, Scheme: "https", Token: tok,
			HttpClient: &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := client(ts.ClientConfig(), token).KV().Put(&consulapi.KVPair{Key: "k", Value: []byte("v")}, nil); err != nil {
		t.Fatalf("right CA, certificate and token: %v", err)
	}
	_, err := client(ts.ClientConfig(), "").KV().Put(&consulapi.KVPair{Key: "k", Value: []byte("v")}, nil)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("no token: err = %v, want 403 (ACL default deny)", err)
	}
	other, err := ts.OtherCA()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client(other.ClientConfig(), token).KV().Put(&consulapi.KVPair{Key: "k"}, nil); err == nil {
		t.Fatal("a client trusting another CA was served")
	}
	if _, err := client(ts.CAOnlyConfig(), token).KV().Put(&consulapi.KVPair{Key: "k"}, nil); err == nil {
		t.Fatal("a client without a certificate was served (verify_incoming expected)")
	}
}

func TestZooKeeperTLS(t *testing.T) {
	ts := testservers.TLSForTest(t)
	srv := testservers.ZooKeeper(t, testservers.WithTLS(ts))
	connect := func(cfg *tls.Config) error {
		dialer := func(network, address string, timeout time.Duration) (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, network, address, cfg)
		}
		conn, events, err := zk.Connect(srv.Endpoints(), 2*time.Second, zk.WithDialer(dialer), zk.WithLogInfo(false), zk.WithLogger(quiet{}))
		if err != nil {
			return err
		}
		defer conn.Close()
		deadline := time.After(4 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.State == zk.StateHasSession {
					_, err := conn.Create("/tls", []byte("v"), 0, zk.WorldACL(zk.PermAll))
					return err
				}
			case <-deadline:
				return context.DeadlineExceeded
			}
		}
	}
	if err := connect(ts.ClientConfig()); err != nil {
		t.Fatalf("right CA and client certificate: %v", err)
	}
	other, err := ts.OtherCA()
	if err != nil {
		t.Fatal(err)
	}
	if err := connect(other.ClientConfig()); err == nil {
		t.Fatal("a client trusting another CA got a session")
	}
	if err := connect(ts.CAOnlyConfig()); err == nil {
		t.Fatal("a client without a certificate got a session (ssl.clientAuth=need expected)")
	}
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}
