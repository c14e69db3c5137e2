package cli

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigFromFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		backend kvstore.Backend
		addrs   []string
		prefix  string
		timeout time.Duration
	}{
		{name: "defaults", backend: kvstore.BoltDB, addrs: []string{"kvop.db"}, timeout: 10 * time.Second},
		{name: "default port per backend", args: []string{"--backend", "consul"},
			backend: kvstore.Consul, addrs: []string{"127.0.0.1:8500"}, timeout: 10 * time.Second},
		{name: "environment", env: map[string]string{"KVOP_BACKEND": "etcd", "KVOP_ENDPOINTS": "a:1, b:2,", "KVOP_PREFIX": "/x//y/", "KVOP_TIMEOUT": "3s"},
			backend: kvstore.Etcd, addrs: []string{"a:1", "b:2"}, prefix: "x/y", timeout: 3 * time.Second},
		{name: "flags win over environment", args: []string{"--backend=zk", "--endpoints", "[::1]:2181", "--timeout", "1s"},
			env:     map[string]string{"KVOP_BACKEND": "etcd", "KVOP_ENDPOINTS": "a:1", "KVOP_TIMEOUT": "bogus"},
			backend: kvstore.ZooKeeper, addrs: []string{"[::1]:2181"}, timeout: time.Second},
		{name: "empty variable is unset", env: map[string]string{"KVOP_BACKEND": ""},
			backend: kvstore.BoltDB, addrs: []string{"kvop.db"}, timeout: 10 * time.Second},
		{name: "boltdb path keeps commas", args: []string{"--endpoints", "/tmp/a,b.db"},
			backend: kvstore.BoltDB, addrs: []string{"/tmp/a,b.db"}, timeout: 10 * time.Second},
		{name: "canonical port", args: []string{"--backend", "ETCD2", "--endpoints", "h:0080"},
			backend: kvstore.EtcdV2, addrs: []string{"h:80"}, timeout: 10 * time.Second},
		{name: "root prefix is none", args: []string{"--prefix", "//"},
			backend: kvstore.BoltDB, addrs: []string{"kvop.db"}, timeout: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ConfigFromFlags(tt.args, env(tt.env))
			if err != nil {
				t.Fatalf("ConfigFromFlags: %v", err)
			}
			if s.Backend != tt.backend || !reflect.DeepEqual(s.Addrs, tt.addrs) || s.Prefix != tt.prefix || s.Timeout != tt.timeout {
				t.Fatalf("got backend %s, addrs %q, prefix %q, timeout %s; want %s, %q, %q, %s",
					s.Backend, s.Addrs, s.Prefix, s.Timeout, tt.backend, tt.addrs, tt.prefix, tt.timeout)
			}
			if s.Config.ConnectionTimeout != tt.timeout || s.Config.TLS != nil {
				t.Fatalf("config %+v: want ConnectionTimeout %s and no TLS", s.Config, tt.timeout)
			}
		})
	}
}

func TestConfigFromFlagsRejects(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the message
	}{
		{"unknown backend", []string{"--backend", "redis"}, nil, `unknown backend "redis"`},
		{"scheme", []string{"--backend", "etcd", "--endpoints", "http://h:2379"}, nil, "without a scheme"},
		{"no port", []string{"--backend", "etcd", "--endpoints", "h"}, nil, "want host:port"},
		{"port zero", []string{"--backend", "consul", "--endpoints", "h:0"}, nil, "1..65535"},
		{"port too big", []string{"--backend", "consul", "--endpoints", "h:65536"}, nil, "1..65535"},
		{"no host", []string{"--backend", "consul", "--endpoints", ":8500"}, nil, "host is missing"},
		{"bad host", []string{"--backend", "consul", "--endpoints", "a b:1"}, nil, "not a host name"},
		{"only commas", []string{"--backend", "zookeeper", "--endpoints", " , "}, nil, "names no host:port"},
		{"bad prefix", []string{"--prefix", "a/../b"}, nil, "--prefix"},
		{"zero timeout", []string{"--timeout", "0s"}, nil, "--timeout must be positive"},
		{"bad timeout variable", nil, map[string]string{"KVOP_TIMEOUT": "10"}, "KVOP_TIMEOUT"},
		{"bad bool variable", nil, map[string]string{"KVOP_INSECURE_SKIP_VERIFY": "maybe"}, "KVOP_INSECURE_SKIP_VERIFY"},
		{"cert without key", []string{"--cert-file", "c.pem"}, nil, "--cert-file and --key-file"},
		{"unknown flag", []string{"--frobnicate"}, nil, "frobnicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ConfigFromFlags(tt.args, env(tt.env))
			if err == nil {
				t.Fatal("ConfigFromFlags succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %q is not a usage error (exit 2)", err)
			}
		})
	}
}

func TestTLSConfig(t *testing.T) {
	ts := testservers.TLSForTest(t)
	s, err := ConfigFromFlags([]string{"--backend", "etcd", "--ca-file", ts.CAFile,
		"--cert-file", ts.ClientCertFile, "--key-file", ts.ClientKeyFile, "--server-name", "localhost"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Config.TLS
	if c == nil || c.RootCAs == nil || len(c.Certificates) != 1 || c.ServerName != "localhost" || c.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLS config %+v: want the CA, one client certificate, ServerName localhost and TLS 1.2 at least", c)
	}

	s, err = ConfigFromFlags(nil, env(map[string]string{"KVOP_INSECURE_SKIP_VERIFY": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Config.TLS == nil || !s.Config.TLS.InsecureSkipVerify || s.Config.TLS.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLS config %+v: want InsecureSkipVerify and TLS 1.2 at least", s.Config.TLS)
	}
}

// A TLS file that is missing or wrong is named, with its flag, in a failure (exit 1).
func TestTLSFileErrors(t *testing.T) {
	ts := testservers.TLSForTest(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"missing CA", []string{"--ca-file", missing}, []string{"--ca-file", missing, "no such file"}},
		{"CA not PEM", []string{"--ca-file", notPEM}, []string{"--ca-file", notPEM, "no PEM certificate"}},
		{"missing cert", []string{"--cert-file", missing, "--key-file", ts.ClientKeyFile}, []string{"--cert-file", missing}},
		{"missing key", []string{"--cert-file", ts.ClientCertFile, "--key-file", missing}, []string{"--key-file", missing}},
		{"key of another cert", []string{"--cert-file", ts.ClientCertFile, "--key-file", ts.ServerKeyFile}, []string{"--cert-file", "--key-file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ConfigFromFlags(tt.args, env(nil))
			if err == nil {
				t.Fatal("ConfigFromFlags succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			var ue usageError
			if errors.As(err, &ue) {
				t.Errorf("error %q is a usage error; a file problem is a failure (exit 1)", err)
			}
		})
	}
}
