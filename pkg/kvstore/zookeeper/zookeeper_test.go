package zookeeper

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
)

// TestZooKeeper checks what the conformance suite cannot see: the tree as other ZooKeeper
// clients see it, and the limits ZooKeeper imposes.
func TestZooKeeper(t *testing.T) {
	srv := testservers.ZooKeeper(t)
	st := open(t, srv.Endpoints(), nil)
	raw := rawConn(t, srv.Endpoints())
	ctx := testCtx(t)

	t.Run("Layout", func(t *testing.T) {
		if err := st.Put(ctx, "layout/a/b", []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		data, _, err := raw.Get("/layout/a/b")
		if err != nil || !bytes.Equal(data, []byte{keyHeader, 'v'}) {
			t.Fatalf("/layout/a/b = %q, %v; want header + value", data, err)
		}
		if data, _, err := raw.Get("/layout/a"); err != nil || len(data) != 0 {
			t.Fatalf("implicit parent /layout/a = %q, %v; want empty data", data, err)
		}
		if err := st.Put(ctx, "layout/empty", nil, nil); err != nil {
			t.Fatal(err)
		}
		if data, _, _ := raw.Get("/layout/empty"); !bytes.Equal(data, []byte{keyHeader}) {
			t.Fatalf("empty value stored as %q, want the header alone", data)
		}
		// Delete removes the implicit parents it leaves empty.
		if err := st.Delete(ctx, "layout/a/b"); err != nil {
			t.Fatal(err)
		}
		if ok, _, _ := raw.Exists("/layout/a"); ok {
			t.Fatal("empty implicit parent /layout/a survived Delete")
		}
		// A raw value written by another tool reads as it is.
		if _, err := raw.Create("/layout/foreign", []byte("raw"), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
		if p, err := st.Get(ctx, "layout/foreign"); err != nil || string(p.Value) != "raw" {
			t.Fatalf("foreign node = %v, %v", p, err)
		}
	})

	t.Run("ReservedNames", func(t *testing.T) {
		for _, key := range []string{"zookeeper/x", "_kvop/locks/y", "_kvop~z"} {
			if err := st.Put(ctx, key, []byte(key), nil); err != nil {
				t.Fatalf("Put(%q): %v", key, err)
			}
			if p, err := st.Get(ctx, key); err != nil || string(p.Value) != key {
				t.Fatalf("Get(%q) = %v, %v", key, p, err)
			}
		}
		if ok, _, _ := raw.Exists("/zookeeper/x"); ok {
			t.Fatal("key zookeeper/x landed in ZooKeeper's own subtree")
		}
		if ok, _, _ := raw.Exists("/_kvop/locks/y"); ok {
			t.Fatal("key _kvop/locks/y landed in kvop's internal subtree")
		}
		l, err := st.List(ctx, "_kvop")
		if err != nil || len(l) != 1 || l[0].Key != "_kvop/locks/y" {
			t.Fatalf("List(_kvop) = %v, %v", l, err)
		}
		for _, key := range []string{"zookeeper/x", "_kvop/locks/y", "_kvop~z"} {
			if err := st.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("LockQueueOutsideUserTree", func(t *testing.T) {
		lk, err := st.NewLock(ctx, "lockarea/l", &kvstore.LockOptions{Value: []byte("me")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lk.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		kids, _, err := raw.Children(lockQueuePath("lockarea/l"))
		if err != nil || len(kids) != 1 || !strings.Contains(kids[0], "lock-") {
			t.Fatalf("queue = %v, %v; want our one entry", kids, err)
		}
		_, stat, err := raw.Get("/lockarea/l")
		if err != nil || stat.EphemeralOwner == 0 {
			t.Fatalf("lock key: %v, %v; want an ephemeral node", stat, err)
		}
		if l, err := st.List(ctx, "lockarea"); err != nil || len(l) != 1 || string(l[0].Value) != "me" {
			t.Fatalf("List(lockarea) = %v, %v; want the lock key alone", l, err)
		}
		if err := lk.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if kids, _, _ := raw.Children(lockQueuePath("lockarea/l")); len(kids) != 0 {
			t.Fatalf("queue after Unlock = %v", kids)
		}
		if ok, _, _ := raw.Exists("/lockarea"); ok {
			t.Fatal("the lock key's empty parent survived Unlock")
		}
	})

	t.Run("TTLKeyHasNoChildren", func(t *testing.T) {
		ttl := &kvstore.WriteOptions{TTL: 5 * time.Second}
		if err := st.Put(ctx, "ttlkids/t", []byte("v"), ttl); err != nil {
			t.Fatal(err)
		}
		if err := st.Put(ctx, "ttlkids/t/below", []byte("v"), nil); !errors.Is(err, kvstore.ErrInvalidKey) {
			t.Fatalf("Put below a TTL key: %v; want ErrInvalidKey", err)
		}
		if err := st.Put(ctx, "ttlkids/p/below", []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		if err := st.Put(ctx, "ttlkids/p", []byte("v"), ttl); !errors.Is(err, kvstore.ErrInvalidKey) {
			t.Fatalf("TTL Put above a key: %v; want ErrInvalidKey", err)
		}
		// Persistent again: the ephemeral node is replaced, LastIndex moves.
		before, _ := st.Get(ctx, "ttlkids/t")
		if err := st.Put(ctx, "ttlkids/t", []byte("w"), nil); err != nil {
			t.Fatal(err)
		}
		_, stat, _ := raw.Get("/ttlkids/t")
		after, _ := st.Get(ctx, "ttlkids/t")
		if stat.EphemeralOwner != 0 || after.LastIndex <= before.LastIndex {
			t.Fatalf("after Put without TTL: owner %x, LastIndex %d -> %d", stat.EphemeralOwner, before.LastIndex, after.LastIndex)
		}
		if err := st.DeleteTree(ctx, "ttlkids"); err != nil {
			t.Fatal(err)
		}
		if ok, _, _ := raw.Exists("/ttlkids"); ok {
			t.Fatal("DeleteTree left the empty directory node")
		}
	})

	t.Run("WatchTreeSeesDeepValueChange", func(t *testing.T) {
		ch, err := st.WatchTree(ctx, "deep")
		if err != nil {
			t.Fatal(err)
		}
		if l := nextList(t, ch); len(l) != 0 {
			t.Fatalf("first event %v, want empty", l)
		}
		other := open(t, srv.Endpoints(), nil) // changes by another client
		steps := []struct {
			key, value string
		}{
			{"deep/a/b/c/d", "1"},
			{"deep/a/b/c/d", "2"}, // a value change four levels down: libkv missed these
			{"deep/a/b", "mid"},   // an implicit parent becomes a key
			{"deep/a/b/c/d", "3"},
		}
		for _, step := range steps {
			if err := other.Put(ctx, step.key, []byte(step.value), nil); err != nil {
				t.Fatal(err)
			}
			for l := nextList(t, ch); !hasPair(l, step.key, []byte(step.value)); l = nextList(t, ch) {
			}
		}
		if err := other.Delete(ctx, "deep/a/b/c/d"); err != nil {
			t.Fatal(err)
		}
		for l := nextList(t, ch); len(l) != 1 || l[0].Key != "deep/a/b"; l = nextList(t, ch) {
		}
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := testCtx(t)
	start := time.Now()
	_, err := kvstore.New(ctx, kvstore.ZooKeeper, []string{"127.0.0.1:1"},
		&kvstore.Config{ConnectionTimeout: 500 * time.Millisecond})
	if !errors.Is(err, kvstore.ErrNotReachable) {
		t.Fatalf("New on a closed port: %v; want ErrNotReachable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("New gave up after %s; ConnectionTimeout is 500ms", d)
	}
}

func TestDigestAuth(t *testing.T) {
	srv := testservers.ZooKeeper(t)
	ctx := testCtx(t)
	cfg := func(user, password string) *kvstore.Config {
		return &kvstore.Config{SessionTimeout: testSession, Username: user, Password: password}
	}
	alice := open(t, srv.Endpoints(), cfg("alice", "secret"))
	if err := alice.Put(ctx, "private/x", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*kvstore.Config{
		"anonymous":      cfg("", ""),
		"wrong password": cfg("alice", "guess"),
		"other user":     cfg("bob", "secret"),
	} {
		st := open(t, srv.Endpoints(), c)
		if _, err := st.Get(ctx, "private/x"); !errors.Is(err, kvstore.ErrAuthFailed) {
			t.Errorf("%s: Get = %v; want ErrAuthFailed", name, err)
		}
		if _, err := st.List(ctx, "private"); !errors.Is(err, kvstore.ErrAuthFailed) {
			t.Errorf("%s: List = %v; want ErrAuthFailed", name, err)
		}
		if err := st.Put(ctx, "private/x", []byte("mine"), nil); !errors.Is(err, kvstore.ErrAuthFailed) {
			t.Errorf("%s: Put = %v; want ErrAuthFailed", name, err)
		}
	}
	again := open(t, srv.Endpoints(), cfg("alice", "secret"))
	if p, err := again.Get(ctx, "private/x"); err != nil || string(p.Value) != "v" {
		t.Fatalf("same credentials, other client: %v, %v", p, err)
	}
	// Locks of authenticated clients work too (the shared /_kvop nodes let anyone queue).
	lk, _ := alice.NewLock(ctx, "private/lock", nil)
	if _, err := lk.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lk.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	anon := open(t, srv.Endpoints(), nil)
	lk2, _ := anon.NewLock(ctx, "public/lock", nil)
	if _, err := lk2.Lock(ctx); err != nil {
		t.Fatalf("anonymous lock after an authenticated client created /_kvop: %v", err)
	}
	_ = lk2.Unlock(ctx)
}

func TestTLS(t *testing.T) {
	ts := testservers.TLSForTest(t)
	srv := testservers.ZooKeeper(t, testservers.WithTLS(ts))
	ctx := testCtx(t)
	st := open(t, srv.Endpoints(), &kvstore.Config{SessionTimeout: testSession, TLS: ts.ClientConfig()})
	if err := st.Put(ctx, "tls/k", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	if p, err := st.Get(ctx, "tls/k"); err != nil || string(p.Value) != "v" {
		t.Fatalf("Get over TLS: %v, %v", p, err)
	}
	other, err := ts.OtherCA()
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		cfg  *kvstore.Config
		want error
	}{
		"no client certificate": {&kvstore.Config{TLS: ts.CAOnlyConfig()}, kvstore.ErrAuthFailed},
		"another CA":            {&kvstore.Config{TLS: other.ClientConfig()}, kvstore.ErrAuthFailed},
		"plain text":            {&kvstore.Config{}, kvstore.ErrNotReachable},
	} {
		c.cfg.ConnectionTimeout = 2 * time.Second
		if _, err := kvstore.New(ctx, kvstore.ZooKeeper, srv.Endpoints(), c.cfg); !errors.Is(err, c.want) {
			t.Errorf("%s: New = %v; want %v", name, err, c.want)
		}
	}
}
