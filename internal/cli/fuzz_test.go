package cli

import (
	"crypto/tls"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/kvop/kvop/pkg/kvstore"
)

// The fuzz targets check that no command line and no environment makes the flag handling
// panic, and that whatever it accepts is something a store can be opened with.
//
//	go test -run '^$' -fuzz FuzzConfigFromFlags ./internal/cli
//	go test -run '^$' -fuzz FuzzParseEndpoints ./internal/cli

// FuzzConfigFromFlags takes the arguments as lines and the environment as KEY=VALUE lines.
func FuzzConfigFromFlags(f *testing.F) {
	f.Add("--backend\netcd\n--endpoints\n127.0.0.1:2379,[::1]:2380", "")
	f.Add("", "KVOP_BACKEND=consul\nKVOP_TIMEOUT=3s\nKVOP_PREFIX=/a//b/")
	f.Add("--timeout=1s\n--prefix\nx/y", "KVOP_TIMEOUT=bogus")
	f.Add("--ca-file\nca.pem\n--insecure-skip-verify", "KVOP_CERT_FILE=c.pem\nKVOP_KEY_FILE=k.pem")
	f.Add("--backend=zk\n--endpoints= , h:1,", "KVOP_SESSION_TIMEOUT=-1s")

	// TLS files come from memory: a fuzzer must not read /dev/zero or wait on a FIFO.
	saved := readFile
	f.Cleanup(func() { readFile = saved })
	readFile = func(name string) ([]byte, error) {
		if name == "garbage.pem" {
			return []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}

	f.Fuzz(func(t *testing.T, argLines, envLines string) {
		var args []string
		if argLines != "" {
			args = strings.Split(argLines, "\n")
		}
		vars := map[string]string{}
		for _, line := range strings.Split(envLines, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				vars[k] = v
			}
		}
		s, err := ConfigFromFlags(args, func(k string) string { return vars[k] })
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		checkSettings(t, s)
	})
}

func checkSettings(t *testing.T, s *Settings) {
	t.Helper()
	if _, err := ParseBackend(string(s.Backend)); err != nil {
		t.Fatalf("accepted backend %q is not registered: %v", s.Backend, err)
	}
	if len(s.Addrs) == 0 || s.Addrs[0] == "" {
		t.Fatalf("accepted no address: %q", s.Addrs)
	}
	if s.Backend != kvstore.BoltDB {
		checkAddrs(t, s.Addrs)
	}
	if s.Prefix != "" {
		if p, err := kvstore.NormalizeKey(s.Prefix); err != nil || p != s.Prefix {
			t.Fatalf("prefix %q is not normalised (%q, %v)", s.Prefix, p, err)
		}
	}
	if s.Timeout <= 0 || s.Config.ConnectionTimeout != s.Timeout || s.Config.SessionTimeout < 0 {
		t.Fatalf("timeouts %s / %+v", s.Timeout, s.Config)
	}
	if s.Config.TLS != nil && s.Config.TLS.MinVersion < tls.VersionTLS12 {
		t.Fatalf("TLS MinVersion %x is below TLS 1.2", s.Config.TLS.MinVersion)
	}
}

// checkAddrs: every address is host:port with a port in range, and in canonical form, so
// that parsing the joined list again gives the same list.
func checkAddrs(t *testing.T, addrs []string) {
	t.Helper()
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			t.Fatalf("accepted address %q is not host:port: %v", a, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			t.Fatalf("accepted address %q has port %q", a, port)
		}
		if strings.ContainsAny(a, ", \t\n/") {
			t.Fatalf("accepted address %q contains a separator", a)
		}
	}
	again, err := ParseEndpoints(kvstore.Etcd, strings.Join(addrs, ","))
	if err != nil || strings.Join(again, ",") != strings.Join(addrs, ",") {
		t.Fatalf("addresses %q parse again as %q, %v", addrs, again, err)
	}
}

func FuzzParseEndpoints(f *testing.F) {
	f.Add("etcd", "127.0.0.1:2379")
	f.Add("consul", " a:1 ,, [fe80::1%eth0]:2 ,")
	f.Add("zookeeper", "http://h:2181")
	f.Add("boltdb", "/var/lib/kvop/kv.db")
	f.Add("etcdv2", "h:+80")
	f.Fuzz(func(t *testing.T, backend, value string) {
		b := kvstore.Backend(backend)
		addrs, err := ParseEndpoints(b, value)
		if err != nil {
			return
		}
		if len(addrs) == 0 || addrs[0] == "" {
			t.Fatalf("accepted no address: %q", addrs)
		}
		if b != kvstore.BoltDB {
			checkAddrs(t, addrs)
		}
	})
}
