package main

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// closedPort returns a local address that nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// oneLine checks that stderr is exactly one "kvop: ..." line containing every want.
func oneLine(t *testing.T, r result, wants ...string) {
	t.Helper()
	if !strings.HasPrefix(r.stderr, "kvop: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr %q: want one \"kvop: ...\" line", r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not mention %q", r.stderr, w)
		}
	}
}

// An unreachable store fails within --timeout with one line naming it. A networked backend is
// pointed at a closed port; a BoltDB file is unreachable while another kvop holds it.
func TestUnreachable(t *testing.T) {
	for _, b := range kvstore.Backends() {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			endpoint := closedPort(t)
			if b == kvstore.BoltDB {
				endpoint = filepath.Join(t.TempDir(), "held.db")
				holder := newKvop(t, &backendtest.Target{Backend: b, Addrs: []string{endpoint}, Config: &kvstore.Config{}})
				p := holder.start("watch", "k")
				p.next(startTimeout) // it has the file open
				defer func() { p.signal(syscall.SIGTERM); p.wait(eventTimeout) }()
			}
			began := time.Now()
			r := result{}
			for _, cmd := range [][]string{{"get", "k"}, {"ls", "d"}, {"watch", "k"}, {"elect", "--key", "k", "--", "true"}} {
				r = runBare(t, append([]string{"--backend", string(b), "--endpoints", endpoint, "--timeout", "1s"}, cmd...)...)
				if r.code != 1 || r.stdout != "" {
					t.Errorf("kvop %s: %s; want exit 1 and no output", cmd[0], r)
				}
				oneLine(t, r, "cannot reach "+string(b)+" at "+endpoint+" within 1s")
			}
			if took := time.Since(began); took > 4*(1+3)*time.Second {
				t.Errorf("4 commands took %s with --timeout 1s", took)
			}
			t.Logf("%s", r.stderr)
		})
	}
}

func runBare(t *testing.T, args ...string) result {
	t.Helper()
	k := &kvop{t: t}
	return k.run(args...)
}

// A TLS file that cannot be read is named, with its flag, before kvop connects anywhere.
func TestTLSFileMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope", "ca.pem")
	for _, b := range kvstore.Backends() {
		r := runBare(t, "--backend", string(b), "--ca-file", missing, "get", "k")
		if r.code != 1 || r.stdout != "" {
			t.Errorf("%s: %s; want exit 1", b, r)
		}
		oneLine(t, r, "--ca-file", missing, "no such file or directory")
	}
	r := runBare(t, "--backend", "etcd", "--cert-file", "c.pem", "get", "k")
	if r.code != 2 || !strings.Contains(r.stderr, "--cert-file and --key-file must be given together") {
		t.Errorf("--cert-file without --key-file: %s; want a usage error (exit 2)", r)
	}
}

// The TLS flags reach the store. The CLI hands every backend the same *tls.Config (each
// backend's own tests cover TLS on its server), so one TLS server — etcd's — shows the wiring.
func TestTLS(t *testing.T) {
	ts := testservers.TLSForTest(t)
	srv := testservers.Etcd(t, testservers.WithTLS(ts))
	base := []string{"--backend", "etcd", "--endpoints", srv.Addr, "--timeout", "5s", "--ca-file", ts.CAFile}
	k := &kvop{t: t, global: append(base, "--cert-file", ts.ClientCertFile, "--key-file", ts.ClientKeyFile)}
	k.must("put", "tls/key", "secret")
	if got := k.must("get", "tls/key"); got != "secret\n" {
		t.Fatalf("get over TLS = %q", got)
	}

	// Without the client certificate the server (mutual TLS) refuses: one line, exit 1.
	noCert := &kvop{t: t, global: base}
	r := noCert.run("get", "tls/key")
	if r.code != 1 {
		t.Fatalf("get without a client certificate: %s; want exit 1", r)
	}
	oneLine(t, r)
	t.Logf("without a client certificate: %s", r.stderr)
}
