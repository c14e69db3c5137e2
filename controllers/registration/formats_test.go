package registration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	consulapi "github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers/registration"
	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/internal/operatortest"
	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/discovery/curator"
	"github.com/kvop/kvop/pkg/discovery/skydns"
	"github.com/kvop/kvop/pkg/kvstore"
)

// skydnsZone is the zone the tests' CoreDNS serves from etcd; each test registers below a
// domain of its own in it.
const skydnsZone = "kvop.test"

func withFormat(f kvopv1.Format) func(*kvopv1.Registration) {
	return func(r *kvopv1.Registration) { r.Spec.Format = f }
}

// TestFormatNotSupported: a native format on a backend that cannot serve it is refused with a
// condition that says which backend it needs, and nothing is written.
func TestFormatNotSupported(t *testing.T) {
	t.Parallel()
	cases := []struct {
		backend kvstore.Backend
		format  kvopv1.Format
		mutate  func(*kvopv1.Registration)
	}{
		{kvstore.BoltDB, kvopv1.FormatSkyDNS, func(r *kvopv1.Registration) {
			r.Spec.SkyDNS = &kvopv1.SkyDNSSpec{Domain: "kvop.test"}
		}},
		{kvstore.Etcd, kvopv1.FormatCurator, nil},
		{kvstore.ZooKeeper, kvopv1.FormatConsulCatalog, nil},
	}
	for _, tc := range cases {
		t.Run(string(tc.format)+"-on-"+string(tc.backend), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, backendtest.Get(t, tc.backend), true)
			mutate := []func(*kvopv1.Registration){withFormat(tc.format)}
			if tc.mutate != nil {
				mutate = append(mutate, tc.mutate)
			}
			reg := f.createRegistration("nope", "nope", intstr.FromInt32(80), mutate...)
			f.readyPod("nope-0", "nope", "10.1.0.10")
			got := f.waitReady("nope", false, kvopv1.ReasonFormatNotSupported, 0)
			msg := got.Status.Conditions[0].Message
			if !strings.Contains(msg, string(tc.format)) || !strings.Contains(msg, string(tc.backend)) {
				t.Errorf("message %q does not name the format and the backend", msg)
			}
			// Deleting it needs no store work.
			if err := operatortest.Client.Delete(context.Background(), reg); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// etcdClient returns a raw etcd client of the target (what CoreDNS reads is outside kvstore).
func etcdClient(t *testing.T, tg *backendtest.Target) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: tg.Addrs, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// lookup asks server for name's records of type qtype (answers only).
func lookup(server, name string, qtype uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Timeout: 2 * time.Second}
	in, _, err := c.Exchange(m, server)
	if err != nil {
		return nil, err
	}
	if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("rcode %s", dns.RcodeToString[in.Rcode])
	}
	return in.Answer, nil
}

// aRecords returns the sorted addresses of name's A records.
func aRecords(server, name string) ([]string, error) {
	rrs, err := lookup(server, name, dns.TypeA)
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, rr := range rrs {
		if a, ok := rr.(*dns.A); ok {
			ips = append(ips, a.A.String())
		}
	}
	slices.Sort(ips)
	return ips, nil
}

// waitA waits until server answers name with exactly ips and returns how long it took.
func waitA(t *testing.T, server, name string, within time.Duration, ips ...string) time.Duration {
	t.Helper()
	start := time.Now()
	slices.Sort(ips)
	operatortest.Eventually(t, within, func() (bool, string) {
		got, err := aRecords(server, name)
		if err != nil {
			return false, err.Error()
		}
		return slices.Equal(got, ips), fmt.Sprintf("%s A = %v, want %v", name, got, ips)
	})
	return time.Since(start)
}

// TestSkyDNS: a real CoreDNS, its etcd plugin on the test etcd, answers A and SRV queries with
// the Ready pods, stops answering for a pod that is no longer Ready, and kvop leaves another
// owner's record alone.
func TestSkyDNS(t *testing.T) {
	t.Parallel()
	tg := backendtest.Get(t, kvstore.Etcd)
	f := newFixture(t, tg, true)
	cli := etcdClient(t, tg)
	coredns := testservers.CoreDNS(t, tg.Addrs[0], skydnsZone, skydns.DefaultPath)
	domain := f.ns + "." + skydnsZone
	ctx := context.Background()

	// Another owner's record at the address one of our pods will have.
	foreignKey := "/skydns/test/kvop/" + f.ns + "/web/10-2-0-13-8080"
	foreign := `{"host":"10.2.0.13","port":8080,"owner":"other-cluster/xyz"}`
	if _, err := cli.Put(ctx, foreignKey, foreign); err != nil {
		t.Fatal(err)
	}

	reg := f.createRegistration("web", "web", intstr.FromInt32(8080), withFormat(kvopv1.FormatSkyDNS),
		func(r *kvopv1.Registration) { r.Spec.SkyDNS = &kvopv1.SkyDNSSpec{Domain: domain} })
	start := time.Now()
	f.readyPod("web-0", "web", "10.2.0.10")
	unready := f.readyPod("web-1", "web", "10.2.0.11")
	f.readyPod("web-2", "web", "10.2.0.12")
	name := "web." + domain
	// CoreDNS serves the other owner's record too: it is in the service's directory.
	waitA(t, coredns.Addr, name, timeout, "10.2.0.10", "10.2.0.11", "10.2.0.12", "10.2.0.13")
	t.Logf("3 pods Ready -> CoreDNS answers A %s with them in %s", name, time.Since(start).Round(time.Millisecond))
	got := f.waitReady("web", true, kvopv1.ReasonRegistered, 3)

	// The layout CoreDNS reads, with kvop's owner kept in the value.
	resp, err := cli.Get(ctx, "/skydns/test/kvop/"+f.ns+"/web/10-2-0-10-8080")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("reading the record: %v %v", err, resp)
	}
	var rec map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"host": "10.2.0.10", "port": float64(8080), "ttl": float64(30), "pod": "web-0",
		"namespace": f.ns, "owner": operatortest.ClusterID + "/" + string(got.UID)}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("record:\n got %v\nwant %v", rec, want)
	}
	if resp.Kvs[0].Lease == 0 {
		t.Error("the record has no lease: it would outlive kvop")
	}

	// SRV: the port, a target per pod.
	rrs, err := lookup(coredns.Addr, name, dns.TypeSRV)
	if err != nil {
		t.Fatal(err)
	}
	var srv []string
	for _, rr := range rrs {
		if s, ok := rr.(*dns.SRV); ok {
			srv = append(srv, fmt.Sprintf("%d %s", s.Port, s.Target))
		}
	}
	slices.Sort(srv)
	var wantSRV []string
	for _, id := range []string{"10-2-0-10-8080", "10-2-0-11-8080", "10-2-0-12-8080", "10-2-0-13-8080"} {
		wantSRV = append(wantSRV, "8080 "+id+".web."+domain+".")
	}
	if !slices.Equal(srv, wantSRV) {
		t.Errorf("SRV %s = %v, want %v", name, srv, wantSRV)
	}

	// A pod that is no longer Ready is no longer answered (deleted, not left to expire).
	operatortest.SetPodReady(t, unready, "10.2.0.11", false)
	d := waitA(t, coredns.Addr, name, promptly, "10.2.0.10", "10.2.0.12", "10.2.0.13")
	t.Logf("pod not Ready -> CoreDNS stops answering it in %s", d.Round(time.Millisecond))

	// A pod at the foreign record's address: the record stays theirs.
	f.readyPod("web-3", "web", "10.2.0.13")
	f.waitReady("web", false, registration.ReasonEntryConflict, 2)
	if r, err := cli.Get(ctx, foreignKey); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != foreign {
		t.Fatalf("the other owner's record changed: %v %v", err, r.Kvs)
	}

	// Deleting the Registration removes its records, not the other owner's.
	if err := operatortest.Client.Delete(ctx, reg); err != nil {
		t.Fatal(err)
	}
	waitA(t, coredns.Addr, name, promptly, "10.2.0.13")
	operatortest.Eventually(t, timeout, func() (bool, string) {
		r, err := cli.Get(ctx, "/skydns/test/kvop/"+f.ns+"/web/", clientv3.WithPrefix())
		return err == nil && len(r.Kvs) == 1 && string(r.Kvs[0].Key) == foreignKey,
			fmt.Sprintf("records left: %v %v", err, r)
	})
}

// TestSkyDNSRestart: a restart of the manager never takes a record away: the new connection
// puts every record on a lease of its own before the old connection's lease expires.
func TestSkyDNSRestart(t *testing.T) {
	t.Parallel()
	tg := backendtest.Get(t, kvstore.Etcd)
	f := newFixture(t, tg, true)
	cli := etcdClient(t, tg)
	domain := f.ns + "." + skydnsZone
	const ttl = 5 * time.Second
	f.createRegistration("db", "db", intstr.FromInt32(5432), withFormat(kvopv1.FormatSkyDNS), func(r *kvopv1.Registration) {
		r.Spec.SkyDNS = &kvopv1.SkyDNSSpec{Domain: domain}
		r.Spec.TTL = &metav1.Duration{Duration: ttl}
	})
	for i := range 3 {
		f.readyPod(fmt.Sprintf("db-%d", i), "db", fmt.Sprintf("10.3.0.%d", 10+i))
	}
	dir := "/skydns/test/kvop/" + f.ns + "/db/"
	leases := func() (map[string]int64, error) {
		r, err := cli.Get(context.Background(), dir, clientv3.WithPrefix())
		if err != nil {
			return nil, err
		}
		out := map[string]int64{}
		for _, kv := range r.Kvs {
			out[string(kv.Key)] = kv.Lease
		}
		return out, nil
	}
	var before map[string]int64
	operatortest.Eventually(t, timeout, func() (bool, string) {
		var err error
		before, err = leases()
		return err == nil && len(before) == 3, fmt.Sprintf("records %v %v", before, err)
	})
	f.waitReady("db", true, kvopv1.ReasonRegistered, 3)

	stopped := time.Now()
	f.mgr.Stop()
	f.mgr = operatortest.StartManager(t, f.ns)
	// Poll until the old lease must have expired: every record present at every look, and all on
	// the new connection's lease by the end.
	var polls int
	for time.Since(stopped) < tg.TTLBound(ttl)+time.Second {
		now, err := leases()
		if err != nil {
			t.Fatal(err)
		}
		if len(now) != 3 {
			t.Fatalf("%s after the stop the service had %d records: %v", time.Since(stopped).Round(time.Millisecond), len(now), now)
		}
		polls++
		time.Sleep(20 * time.Millisecond)
	}
	after, err := leases()
	if err != nil {
		t.Fatal(err)
	}
	for k, l := range after {
		if l == before[k] || l == 0 {
			t.Errorf("%s still on lease %x (before %x): not taken over by the new connection", k, l, before[k])
		}
	}
	t.Logf("restart: 3 records present in all %d looks over %s; all moved to the new lease", polls, time.Since(stopped).Round(time.Millisecond))
	f.waitReady("db", true, kvopv1.ReasonRegistered, 3)
}

// TestConsulCatalog: every Ready pod is a Consul service instance (tags, meta, a passing TTL
// check with deregister-critical-after) as Consul's catalog, health API and DNS interface show
// it; a pod no longer Ready is deregistered at once; when kvop stops, the checks turn critical
// and Consul removes the instances on its own.
func TestConsulCatalog(t *testing.T) {
	t.Parallel()
	srv := testservers.Consul(t, testservers.WithConsulDNS())
	tg := *backendtest.Get(t, kvstore.Consul)
	tg.Server, tg.Addrs = srv, srv.Endpoints()
	f := newFixture(t, &tg, true)
	api, err := consulapi.NewClient(&consulapi.Config{Address: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 3 * time.Second
	reg := f.createRegistration("shop", "shop", intstr.FromInt32(8080), withFormat(kvopv1.FormatConsulCatalog),
		func(r *kvopv1.Registration) {
			r.Spec.TTL = &metav1.Duration{Duration: ttl}
			r.Spec.ConsulCatalog = &kvopv1.ConsulCatalogSpec{Tags: []string{"v1", "k8s"}}
			r.Spec.Metadata = map[string]string{"zone": "a", "not.valid/for-consul": "x"}
		})
	f.readyPod("shop-0", "shop", "10.4.0.10")
	unready := f.readyPod("shop-1", "shop", "10.4.0.11")

	passing := func() ([]string, error) {
		entries, _, err := api.Health().Service("shop", "", true, nil)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, e := range entries {
			out = append(out, fmt.Sprintf("%s:%d", e.Service.Address, e.Service.Port))
		}
		slices.Sort(out)
		return out, nil
	}
	waitPassing := func(within time.Duration, want ...string) {
		t.Helper()
		operatortest.Eventually(t, within, func() (bool, string) {
			got, err := passing()
			return err == nil && slices.Equal(got, want), fmt.Sprintf("passing instances %v (%v), want %v", got, err, want)
		})
	}
	start := time.Now()
	waitPassing(timeout, "10.4.0.10:8080", "10.4.0.11:8080")
	t.Logf("2 pods Ready -> 2 passing Consul instances in %s", time.Since(start).Round(time.Millisecond))
	got := f.waitReady("shop", true, kvopv1.ReasonRegistered, 2)

	catalog, _, err := api.Catalog().Service("shop", "", nil)
	if err != nil || len(catalog) != 2 {
		t.Fatalf("catalog: %v %v", err, catalog)
	}
	c := catalog[0]
	wantMeta := map[string]string{"external-source": "kubernetes", "k8s-namespace": f.ns, "pod-name": "shop-0",
		"kvop-owner": operatortest.ClusterID + "/" + string(got.UID), "zone": "a"}
	if c.ServiceID != "kvop-shop-10.4.0.10:8080" || c.ServiceAddress != "10.4.0.10" || c.ServicePort != 8080 ||
		!reflect.DeepEqual(c.ServiceTags, []string{"v1", "k8s"}) || !reflect.DeepEqual(c.ServiceMeta, wantMeta) {
		t.Errorf("catalog instance %+v", c)
	}
	checks, err := api.Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	check := checks["service:kvop-shop-10.4.0.10:8080"]
	// (The agent does not report deregister_critical_service_after: its effect is checked below.)
	if check == nil || check.Status != consulapi.HealthPassing || check.Type != "ttl" {
		t.Errorf("check %+v", check)
	}

	// Consul's DNS interface answers for the service.
	operatortest.Eventually(t, timeout, func() (bool, string) {
		ips, err := aRecords(srv.DNSAddr, "shop.service.consul")
		return err == nil && slices.Equal(ips, []string{"10.4.0.10", "10.4.0.11"}), fmt.Sprintf("consul DNS: %v %v", ips, err)
	})

	// Kept passing for several TTLs.
	time.Sleep(3 * ttl)
	waitPassing(time.Second, "10.4.0.10:8080", "10.4.0.11:8080")

	operatortest.SetPodReady(t, unready, "10.4.0.11", false)
	d := time.Now()
	operatortest.Eventually(t, promptly, func() (bool, string) {
		catalog, _, err := api.Catalog().Service("shop", "", nil)
		return err == nil && len(catalog) == 1, fmt.Sprintf("catalog has %d instances (%v)", len(catalog), err)
	})
	t.Logf("pod not Ready -> instance deregistered in %s", time.Since(d).Round(time.Millisecond))
	_ = reg

	// kvop gone: the check turns critical within its TTL, and Consul deregisters the instance
	// after deregister_critical_service_after (at least 1m; the agent reaps every 30s).
	f.mgr.Stop()
	stopped := time.Now()
	waitPassing(2*ttl + 5*time.Second)
	t.Logf("kvop stopped -> no passing instance after %s", time.Since(stopped).Round(time.Millisecond))
	if testing.Short() {
		return
	}
	operatortest.Eventually(t, 3*time.Minute, func() (bool, string) {
		catalog, _, err := api.Catalog().Service("shop", "", nil)
		return err == nil && len(catalog) == 0, fmt.Sprintf("catalog still has %d instances (%v)", len(catalog), err)
	})
	t.Logf("kvop stopped -> Consul removed the instance after %s", time.Since(stopped).Round(time.Second))
}

// TestCurator: Ready pods are Curator ServiceInstances, ephemeral nodes under
// <basePath>/<service>/<id> whose data is exactly the JSON Curator reads; a pod no longer Ready
// is removed; a restart keeps every instance.
func TestCurator(t *testing.T) {
	t.Parallel()
	tg := backendtest.Get(t, kvstore.ZooKeeper)
	f := newFixture(t, tg, true)
	conn, _, err := zk.Connect(tg.Addrs, 5*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	base := "/" + f.ns + "/services"
	f.createRegistration("api", "api", intstr.FromString("http"), withFormat(kvopv1.FormatCurator),
		func(r *kvopv1.Registration) {
			r.Spec.TTL = &metav1.Duration{Duration: 5 * time.Second}
			r.Spec.Curator = &kvopv1.CuratorSpec{BasePath: base, URISpec: "{scheme}://{address}:{port}/v1"}
		})
	port := []corev1.ContainerPort{{Name: "http", ContainerPort: 9000}}
	pod := f.readyPod("api-0", "api", "10.5.0.10", port...)
	unready := f.readyPod("api-1", "api", "10.5.0.11", port...)

	children := func() ([]string, error) {
		c, _, err := conn.Children(base + "/api")
		if err == zk.ErrNoNode {
			return nil, nil
		}
		slices.Sort(c)
		return c, err
	}
	waitChildren := func(within time.Duration, want ...string) {
		t.Helper()
		operatortest.Eventually(t, within, func() (bool, string) {
			c, err := children()
			return err == nil && slices.Equal(c, want), fmt.Sprintf("%s/api children %v (%v), want %v", base, c, err, want)
		})
	}
	waitChildren(timeout, "10.5.0.10:9000", "10.5.0.11:9000")
	reg := f.waitReady("api", true, kvopv1.ReasonRegistered, 2)

	data, stat, err := conn.Get(base + "/api/10.5.0.10:9000")
	if err != nil {
		t.Fatal(err)
	}
	if stat.EphemeralOwner == 0 {
		t.Error("the instance node is not ephemeral")
	}
	var inst map[string]any
	if err := json.Unmarshal(data, &inst); err != nil {
		t.Fatalf("node data is not JSON from its first byte (as Curator reads it): %v %q", err, data)
	}
	if err := operatortest.Client.Get(context.Background(), client.ObjectKeyFromObject(pod), pod); err != nil {
		t.Fatal(err)
	}
	since := pod.Status.Conditions[0].LastTransitionTime.UnixMilli()
	want := map[string]any{
		"name": "api", "id": "10.5.0.10:9000", "address": "10.5.0.10", "port": float64(9000), "sslPort": nil,
		"payload": map[string]any{"@class": "java.util.LinkedHashMap", "zone": "a", "version": "1",
			curator.PayloadOwner: operatortest.ClusterID + "/" + string(reg.UID), curator.PayloadPod: "api-0",
			curator.PayloadNamespace: f.ns},
		"registrationTimeUTC": float64(since), "serviceType": "DYNAMIC", "enabled": true,
		"uriSpec": map[string]any{"parts": []any{
			map[string]any{"value": "scheme", "variable": true}, map[string]any{"value": "://", "variable": false},
			map[string]any{"value": "address", "variable": true}, map[string]any{"value": ":", "variable": false},
			map[string]any{"value": "port", "variable": true}, map[string]any{"value": "/v1", "variable": false},
		}},
	}
	if !reflect.DeepEqual(inst, want) {
		t.Errorf("instance:\n got %v\nwant %v", inst, want)
	}

	operatortest.SetPodReady(t, unready, "10.5.0.11", false)
	waitChildren(promptly, "10.5.0.10:9000")

	// Restart: the instance node stays (the old session is abandoned, not closed) until the new
	// session has taken it over.
	stopped := time.Now()
	f.mgr.Stop()
	f.mgr = operatortest.StartManager(t, f.ns)
	for time.Since(stopped) < tg.TTLBound(5*time.Second)+time.Second {
		if c, err := children(); err != nil || !slices.Equal(c, []string{"10.5.0.10:9000"}) {
			t.Fatalf("%s after the stop: children %v (%v)", time.Since(stopped).Round(time.Millisecond), c, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, stat2, err := conn.Get(base + "/api/10.5.0.10:9000")
	if err != nil || stat2.EphemeralOwner == stat.EphemeralOwner {
		t.Errorf("instance not taken over by the new session: %v, owner %x (before %x)", err, stat2.EphemeralOwner, stat.EphemeralOwner)
	}
	f.waitReady("api", true, kvopv1.ReasonRegistered, 1)
}
