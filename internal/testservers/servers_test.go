package testservers_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	consulapi "github.com/hashicorp/consul/api"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvop/kvop/internal/testservers"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestEtcdV3WriteReadLease(t *testing.T) {
	srv := testservers.Etcd(t)
	ctx := ctxFor(t, 30*time.Second)
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	if _, err := cli.Put(ctx, "greeting", "hello"); err != nil {
		t.Fatalf("put: %v", err)
	}
	got, err := cli.Get(ctx, "greeting")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "hello" {
		t.Fatalf("get = %v, %v; want hello", got, err)
	}

	// TTL feature: a key bound to a 2 s lease disappears once the lease expires.
	lease, err := cli.Grant(ctx, 2)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if _, err := cli.Put(ctx, "ephemeral", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "leased key to expire", func() bool {
		r, err := cli.Get(ctx, "ephemeral")
		return err == nil && len(r.Kvs) == 0
	})
}

func TestEtcdV2TTLKey(t *testing.T) {
	srv := testservers.EtcdV2(t)
	ctx := ctxFor(t, 30*time.Second)
	c, err := clientv2.New(clientv2.Config{Endpoints: []string{"http://" + srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	keys := clientv2.NewKeysAPI(c)
	if _, err := keys.Set(ctx, "/greeting", "hello", nil); err != nil {
		t.Fatalf("v2 set: %v", err)
	}
	r, err := keys.Get(ctx, "/greeting", nil)
	if err != nil || r.Node.Value != "hello" {
		t.Fatalf("v2 get = %v, %v; want hello", r, err)
	}
	if _, err := keys.Set(ctx, "/ephemeral", "x", &clientv2.SetOptions{TTL: time.Second}); err != nil {
		t.Fatalf("v2 set with TTL: %v", err)
	}
	waitFor(t, 5*time.Second, "v2 TTL key to expire", func() bool {
		_, err := keys.Get(ctx, "/ephemeral", nil)
		return clientv2.IsKeyNotFound(err)
	})
}

func TestZooKeeperEphemeralNode(t *testing.T) {
	srv := testservers.ZooKeeper(t)
	conn, _, err := zk.Connect(srv.Endpoints(), 2*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Create("/greeting", []byte("hello"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create: %v", err)
	}
	data, _, err := conn.Get("/greeting")
	if err != nil || string(data) != "hello" {
		t.Fatalf("get = %q, %v; want hello", data, err)
	}

	// TTL feature: an ephemeral node vanishes with the session that created it.
	owner, _, err := zk.Connect(srv.Endpoints(), time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Create("/ephemeral", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create ephemeral: %v", err)
	}
	if ok, _, _ := conn.Exists("/ephemeral"); !ok {
		t.Fatal("ephemeral node not visible to another session")
	}
	owner.Close()
	waitFor(t, 5*time.Second, "ephemeral node to vanish", func() bool {
		ok, _, err := conn.Exists("/ephemeral")
		return err == nil && !ok
	})
}

func TestConsulKVAndSession(t *testing.T) {
	srv := testservers.Consul(t)
	c, err := consulapi.NewClient(&consulapi.Config{Address: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	kv := c.KV()
	if _, err := kv.Put(&consulapi.KVPair{Key: "greeting", Value: []byte("hello")}, nil); err != nil {
		t.Fatalf("put: %v", err)
	}
	pair, _, err := kv.Get("greeting", nil)
	if err != nil || pair == nil || string(pair.Value) != "hello" {
		t.Fatalf("get = %v, %v; want hello", pair, err)
	}

	// TTL feature: a key held by a 1 s delete-behaviour session goes once the session expires
	// (the test server lowers session_ttl_min to 1 s; Consul expires within 2 × TTL).
	id, _, err := c.Session().Create(&consulapi.SessionEntry{TTL: "1s", Behavior: consulapi.SessionBehaviorDelete, LockDelay: time.Millisecond}, nil)
	if err != nil {
		t.Fatalf("session create: %v", err)
	}
	if ok, _, err := kv.Acquire(&consulapi.KVPair{Key: "ephemeral", Value: []byte("x"), Session: id}, nil); err != nil || !ok {
		t.Fatalf("acquire = %v, %v", ok, err)
	}
	waitFor(t, 10*time.Second, "session key to expire", func() bool {
		p, _, err := kv.Get("ephemeral", nil)
		return err == nil && p == nil
	})
}

// TestFaultHelpers proves Pause/Resume, Kill and Restart on a real server: a paused server
// does not answer, a resumed one does, and a killed then restarted one keeps its data and port.
func TestFaultHelpers(t *testing.T) {
	srv := testservers.Etcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctxFor(t, 10*time.Second), "kept", "yes"); err != nil {
		t.Fatal(err)
	}

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err = cli.Get(short, "kept")
	cancel()
	if err == nil {
		t.Fatal("a paused server answered")
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctxFor(t, 10*time.Second), "kept"); err != nil {
		t.Fatalf("resumed server: %v", err)
	}

	srv.Kill()
	if conn, err := net.DialTimeout("tcp", srv.Addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("killed server still accepts connections")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	got, err := cli.Get(ctxFor(t, 10*time.Second), "kept")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "yes" {
		t.Fatalf("after restart get = %v, %v; want the data kept", got, err)
	}

	// Wipe + Restart gives an empty server on the same address.
	srv.Kill()
	if err := srv.Wipe(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The old client's cluster ID no longer matches; a new client sees an empty store.
	fresh, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	got, err = fresh.Get(ctxFor(t, 10*time.Second), "kept")
	if err != nil || len(got.Kvs) != 0 {
		t.Fatalf("after wipe get = %v, %v; want nothing", got, err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
