//go:build faults

package operatorfaults

import (
	"io"
	"net"
	"path"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/operatortest"
	"github.com/kvop/kvop/pkg/kvstore"
)

// managerSession is the ZooKeeper session timeout of the manager's stores: KVEndpoint has no
// field for it, so it is the kvstore default.
const managerSession = kvstore.DefaultSessionTimeout

// TestZooKeeperSessionExpiry expires the manager's ZooKeeper session twice, and the operator
// must bring back every entry and a leader each time:
//
//   - freeze: the server is paused (SIGSTOP) for longer than the session timeout and resumed.
//     On resume the server's expiry thread races the client's queued reconnect, so the session
//     may survive; the test says which happened (from the entries' ephemeral owner).
//   - partition: the manager reaches the server through a proxy that drops every connection for
//     longer than the session timeout while the server runs on, so the server expires the
//     session for certain.
func TestZooKeeperSessionExpiry(t *testing.T) {
	t.Parallel()
	tg := backendtest.Get(t, kvstore.ZooKeeper).Private(t)
	proxy := newProxy(t, tg.Server.Addr)
	// The manager connects through the proxy; the test's reader and raw client do not.
	viaProxy := *tg
	viaProxy.Addrs = []string{proxy.addr()}
	f := newFixture(t, &viaProxy)
	f.reader = newReader(t, tg)
	f.mgr = operatortest.StartManager(t, f.ns)
	f.createWorkload()
	f.waitEndpoint(metav1.ConditionTrue, settle)
	f.waitEntries(settle)
	f.waitLeader(settle)

	raw, _, err := zk.Connect(tg.Addrs, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	// owners returns the session that owns each entry's ephemeral node.
	owners := func() []int64 {
		var out []int64
		for _, ep := range wantedEndpoints() {
			_, st, err := raw.Get(path.Join("/", f.prefix, "services", service, ep))
			if err != nil {
				return nil
			}
			out = append(out, st.EphemeralOwner)
		}
		return out
	}

	t.Run("freeze", func(t *testing.T) {
		before := owners()
		if err := tg.Server.Pause(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(managerSession + 4*time.Second)
		if err := tg.Server.Resume(); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		entries := f.waitEntries(settle)
		leader, leaderIn := f.waitLeader(settle)
		f.alive("after the freeze")
		after := owners()
		outcome := "the session expired, the entries are in a new one"
		if slices.Equal(before, after) {
			outcome = "the session survived (the reconnect won the race on resume)"
		}
		checkBound(t, "zookeeper freeze", entries, back)
		figure(t, "zookeeper freeze %s: %s; entries back %s and leader %s %s after the resume",
			managerSession+4*time.Second, outcome, round2(entries), leader, round2(leaderIn))
	})

	t.Run("partition", func(t *testing.T) {
		before := owners()
		proxy.cut()
		time.Sleep(managerSession + 4*time.Second)
		// The server ran all along: the session is expired and its ephemeral nodes are gone.
		if after := owners(); after != nil && slices.Equal(before, after) {
			t.Fatalf("the entries still belong to session %x after %s without a connection", before[0], managerSession+4*time.Second)
		}
		proxy.heal()
		back := time.Now()
		entries := f.waitEntries(settle)
		leader, leaderIn := f.waitLeader(settle)
		f.waitEndpoint(metav1.ConditionTrue, settle)
		f.alive("after the partition")
		if after := owners(); after == nil || slices.Contains(after, before[0]) {
			t.Errorf("entries owned by sessions %x, want a new session (was %x)", after, before[0])
		}
		checkBound(t, "zookeeper partition", entries, back)
		figure(t, "zookeeper partition %s (session expired): entries back in a new session %s and leader %s %s after the network healed",
			managerSession+4*time.Second, round2(entries), leader, round2(leaderIn))
	})
}

// TestConsulSessionsDestroyed destroys every session of the manager's Consul stores through the
// Consul API (as an operator's `consul session destroy`, or a server that lost them would):
// the entries and the leader's lock go with them (behavior "delete"), and the operator must put
// them back.
func TestConsulSessionsDestroyed(t *testing.T) {
	t.Parallel()
	tg := backendtest.Get(t, kvstore.Consul).Private(t)
	f := newFixture(t, tg)
	f.mgr = operatortest.StartManager(t, f.ns)
	f.createWorkload()
	f.waitEndpoint(metav1.ConditionTrue, settle)
	f.waitEntries(settle)
	before, _ := f.waitLeader(settle)

	cli, err := api.NewClient(&api.Config{Address: tg.Server.Addr})
	if err != nil {
		t.Fatal(err)
	}
	sessions, _, err := cli.Session().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	destroyed := time.Now()
	for _, s := range sessions {
		if _, err := cli.Session().Destroy(s.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The entries are gone at once (that is what the destroy does); then the operator's work.
	operatortest.Eventually(t, 10*time.Second, func() (bool, string) {
		ok, why := f.entriesOK()
		return !ok, "entries still all there after their sessions were destroyed: " + why
	})
	entries := f.waitEntries(settle)
	leader, leaderIn := f.waitLeader(settle)
	f.alive("after the sessions were destroyed")
	checkBound(t, "consul sessions destroyed", time.Since(destroyed), destroyed)
	figure(t, "consul: %d sessions destroyed; entries back %s and leader %s (was %s) %s after the destroy",
		len(sessions), since(destroyed), leader, before, round2(leaderIn+entries))
}

// checkBound fails when the entries took longer than reassertBound since from.
func checkBound(t *testing.T, what string, took time.Duration, from time.Time) {
	t.Helper()
	if took > reassertBound {
		t.Errorf("%s: entries back %s after %s; want within TTL + 5s = %s", what, round2(took), from.Format(time.TimeOnly), reassertBound)
	}
}

// proxy forwards TCP connections to a server until cut: then it closes every connection and
// accepts new ones only to close them, until heal — a network partition between the manager
// and the server, which keeps running.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu    sync.Mutex
	cutOn bool
	conns map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, conns: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.serve(&wg)
	}()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve(wg *sync.WaitGroup) {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil || !p.track(c, up) {
			c.Close()
			if up != nil {
				up.Close()
			}
			continue
		}
		wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// track records a proxied connection pair, or refuses it while cut.
func (p *proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cutOn {
		return false
	}
	for _, c := range conns {
		p.conns[c] = true
	}
	return true
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOn = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *proxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOn = false
}
