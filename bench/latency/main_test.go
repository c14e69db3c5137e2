//go:build bench

package latency

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/pkg/kvstore"
)

func TestMain(m *testing.M) {
	// client-go's elector logs every attempt through klog, and envtest warns when no
	// controller-runtime logger is set: neither says anything the harness needs.
	klog.SetLogger(logr.Discard())
	ctrllog.SetLogger(logr.Discard())
	// The leader processes that the crash runs SIGKILL are this test binary run again in one
	// of these roles (backendtest.StartChild); they must be registered before Run.
	backendtest.RegisterChildRole(roleKvopCandidate, runKvopCandidate)
	backendtest.RegisterChildRole(roleEtcdElection, runEtcdElection)
	backendtest.RegisterChildRole(roleConsulLock, runConsulLock)
	backendtest.RegisterChildRole(roleClientGoLease, runClientGoLease)
	backendtest.Main(m)
}

// settle is how long a run waits after starting a candidate (or after a handover) before the
// next measurement, so that the waiting candidate is already blocked in its lock call when the
// leader goes: the measurement is then the handover alone, not the waiter's start-up.
const settle = 250 * time.Millisecond

// config is the harness's settings, read from the environment (see the package doc).
type config struct {
	out       string
	handovers int
	crashes   int
	ttl       time.Duration
	slowPeers bool
	backends  []kvstore.Backend
	peers     []string
}

const (
	peerEtcd     = "etcd"
	peerConsul   = "consul"
	peerClientGo = "client-go"
)

func loadConfig() (config, error) {
	c := config{
		out:       os.Getenv("BENCH_LATENCY_OUT"),
		handovers: 20,
		crashes:   5,
		ttl:       2 * time.Second,
		slowPeers: os.Getenv("BENCH_SLOW_PEERS") == "1",
		backends:  kvstore.Backends(),
		peers:     []string{peerEtcd, peerConsul, peerClientGo},
	}
	var err error
	if c.handovers, err = envInt("BENCH_HANDOVERS", c.handovers); err != nil {
		return c, err
	}
	if c.crashes, err = envInt("BENCH_CRASHES", c.crashes); err != nil {
		return c, err
	}
	if v := os.Getenv("BENCH_TTL"); v != "" {
		// etcd leases are whole seconds, so the peers can only match whole-second TTLs.
		if c.ttl, err = time.ParseDuration(v); err != nil || c.ttl < time.Second || c.ttl%time.Second != 0 {
			return c, fmt.Errorf("BENCH_TTL=%q: want a whole number of seconds, at least 1s", v)
		}
	}
	if v := os.Getenv("BENCH_BACKENDS"); v != "" {
		c.backends = nil
		for _, name := range splitList(v) {
			b := kvstore.Backend(name)
			if !slices.Contains(kvstore.Backends(), b) {
				return c, fmt.Errorf("BENCH_BACKENDS: unknown backend %q (have %v)", name, kvstore.Backends())
			}
			c.backends = append(c.backends, b)
		}
	}
	if v, ok := os.LookupEnv("BENCH_PEERS"); ok {
		c.peers = splitList(v)
		for _, p := range c.peers {
			if p != peerEtcd && p != peerConsul && p != peerClientGo {
				return c, fmt.Errorf("BENCH_PEERS: unknown peer %q (have etcd, consul, client-go)", p)
			}
		}
	}
	return c, nil
}

func (c config) settings() map[string]string {
	backends := make([]string, len(c.backends))
	for i, b := range c.backends {
		backends[i] = string(b)
	}
	return map[string]string{
		"handovers":  strconv.Itoa(c.handovers),
		"crashes":    strconv.Itoa(c.crashes),
		"ttl":        c.ttl.String(),
		"slow_peers": strconv.FormatBool(c.slowPeers),
		"backends":   strings.Join(backends, ","),
		"peers":      strings.Join(c.peers, ","),
		"settle":     settle.String(),
	}
}

func (c config) peer(name string) bool { return slices.Contains(c.peers, name) }

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a positive integer", name, v)
	}
	return n, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
