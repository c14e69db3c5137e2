package discovery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/pkg/discovery"
	"github.com/kvop/kvop/pkg/kvstore"
)

const ttl = 2 * time.Second

func TestMain(m *testing.M) {
	backendtest.RegisterChildRole("register", runChildRegister)
	backendtest.Main(m)
}

// runChildRegister registers one entry in a child process and holds it until killed.
func runChildRegister(spec backendtest.ChildSpec, out io.Writer) error {
	ctx := context.Background()
	store, err := spec.Open(ctx)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(spec.Args["port"])
	e := discovery.Entry{Service: spec.Args["service"], Address: "10.1.1.1", Port: port}
	if err := discovery.NewRegistry(store, spec.Args["prefix"]).Register(ctx, e, ttl); err != nil {
		return err
	}
	fmt.Fprintln(out, "REGISTERED")
	select {}
}

func prefixFor(t *testing.T) string {
	return "discovery-test/" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

func TestRegisterLayoutAndDeregister(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		ctx := context.Background()
		store := tg.Open(t)
		prefix := prefixFor(t)
		reg := discovery.NewRegistry(store, prefix)
		e := discovery.Entry{Service: "web", Address: "10.0.0.7", Port: 8080, Pod: "web-0", Namespace: "default",
			Node: "n1", Metadata: map[string]string{"zone": "a"}, Owner: "cluster-1/uid-1"}
		if err := reg.Register(ctx, e, ttl); err != nil {
			t.Fatal(err)
		}
		// The layout of the spec: <prefix>/services/<service>/<address>:<port>, JSON value.
		pair, err := store.Get(ctx, prefix+"/services/web/10.0.0.7:8080")
		if err != nil {
			t.Fatalf("entry not at the documented key: %v", err)
		}
		var raw map[string]any
		if err := json.Unmarshal(pair.Value, &raw); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"service": "web", "address": "10.0.0.7", "port": 8080.0, "pod": "web-0",
			"namespace": "default", "node": "n1", "metadata": map[string]any{"zone": "a"}, "owner": "cluster-1/uid-1"}
		if !reflect.DeepEqual(raw, want) {
			t.Fatalf("stored JSON = %v, want %v", raw, want)
		}
		// Kept alive past its TTL bound.
		time.Sleep(tg.TTLBound(ttl) + 500*time.Millisecond)
		got, err := reg.Entries(ctx, "web")
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], e) {
			t.Fatalf("entries after the TTL = %v, %v; want the entry kept alive", got, err)
		}
		if err := reg.Deregister(ctx, e); err != nil {
			t.Fatal(err)
		}
		if got, err := reg.Entries(ctx, "web"); err != nil || len(got) != 0 {
			t.Fatalf("entries after deregister = %v, %v; want none at once", got, err)
		}
	})
}

func TestEntryOfDeadProcessExpires(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		tg = tg.Fresh(t)
		prefix := prefixFor(t)
		child := backendtest.StartChild(t, tg, "register", map[string]string{"prefix": prefix, "service": "api", "port": "9000"})
		child.WaitLine(t, "REGISTERED", 20*time.Second)
		var reg *discovery.Registry
		if !tg.SingleProcess {
			reg = discovery.NewRegistry(tg.Open(t), prefix)
			if got, err := reg.Entries(context.Background(), "api"); err != nil || len(got) != 1 {
				t.Fatalf("entries while the writer lives = %v, %v", got, err)
			}
		}
		killed := time.Now()
		child.Kill()
		if tg.SingleProcess {
			reg = discovery.NewRegistry(tg.Open(t), prefix)
		}
		bound := tg.TTLBound(ttl)
		for {
			got, err := reg.Entries(context.Background(), "api")
			if err == nil && len(got) == 0 {
				t.Logf("%s: entry of a killed writer gone after %s (bound %s)", tg.Backend, time.Since(killed).Round(time.Millisecond), bound)
				return
			}
			if time.Since(killed) > bound+time.Second {
				t.Fatalf("entry still there %s after the writer died (bound %s): %v, %v", time.Since(killed), bound, got, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestWatchSendsSortedListsOnEveryChange(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		reg := discovery.NewRegistry(tg.Open(t), prefixFor(t))
		lists := reg.Watch(ctx, "db")
		expect := func(want ...string) {
			t.Helper()
			deadline := time.After(10 * time.Second)
			var last []string
			for {
				select {
				case entries := <-lists:
					last = last[:0]
					for _, e := range entries {
						last = append(last, e.Endpoint())
					}
					if reflect.DeepEqual(last, want) || (len(want) == 0 && len(last) == 0) {
						return
					}
				case <-deadline:
					t.Fatalf("watch never sent %v (last %v)", want, last)
				}
			}
		}
		expect() // first event: the current, empty list
		a := discovery.Entry{Service: "db", Address: "10.0.0.2", Port: 5432}
		b := discovery.Entry{Service: "db", Address: "10.0.0.1", Port: 5432}
		if err := reg.Register(ctx, a, ttl); err != nil {
			t.Fatal(err)
		}
		expect("10.0.0.2:5432")
		if err := reg.Register(ctx, b, ttl); err != nil {
			t.Fatal(err)
		}
		expect("10.0.0.1:5432", "10.0.0.2:5432")
		if err := reg.Deregister(ctx, a); err != nil {
			t.Fatal(err)
		}
		expect("10.0.0.1:5432")
	})
}

func TestDeregisterOwnedLeavesOthersAlone(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		ctx := context.Background()
		reg := discovery.NewRegistry(tg.Open(t), prefixFor(t))
		mine := discovery.Entry{Service: "s", Address: "10.0.0.1", Port: 80, Owner: "me"}
		theirs := discovery.Entry{Service: "s", Address: "10.0.0.2", Port: 80, Owner: "them"}
		for _, e := range []discovery.Entry{mine, theirs} {
			if err := reg.Register(ctx, e, ttl); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := reg.DeregisterOwned(ctx, reg.Key(theirs), "me"); ok || err != nil {
			t.Fatalf("deleted another owner's entry: %v, %v", ok, err)
		}
		if ok, err := reg.DeregisterOwned(ctx, reg.Key(mine), "me"); !ok || err != nil {
			t.Fatalf("own entry not deleted: %v, %v", ok, err)
		}
		got, err := reg.Entries(ctx, "s")
		if err != nil || len(got) != 1 || got[0].Owner != "them" {
			t.Fatalf("entries = %v, %v; want only theirs", got, err)
		}
		if ok, err := reg.DeregisterOwned(ctx, reg.Key(mine), "me"); ok || err != nil {
			t.Fatalf("absent entry: %v, %v; want false, nil", ok, err)
		}
	})
}

func TestKeepRestoresAVanishedEntry(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		ctx, cancel := context.WithCancel(context.Background())
		store := tg.Open(t)
		reg := discovery.NewRegistry(store, prefixFor(t))
		e := discovery.Entry{Service: "k", Address: "10.0.0.9", Port: 1}
		done := make(chan error, 1)
		go func() { done <- reg.Keep(ctx, e, ttl) }()
		waitEntries(t, reg, "k", 1)
		// Someone (an outage, an expired session, an operator by mistake) deletes it: Keep
		// writes it again.
		if err := store.Delete(context.Background(), reg.Key(e)); err != nil {
			t.Fatal(err)
		}
		waitEntries(t, reg, "k", 1)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Keep returned %v", err)
		}
		waitEntries(t, reg, "k", 0)
	})
}

func waitEntries(t *testing.T, reg *discovery.Registry, service string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := reg.Entries(context.Background(), service)
		if err == nil && len(got) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("entries of %s = %v, %v; want %d", service, got, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestInvalidEntriesAreRefused(t *testing.T) {
	store := backendtest.Get(t, kvstore.BoltDB).Fresh(t).Open(t)
	reg := discovery.NewRegistry(store, "p")
	for _, e := range []discovery.Entry{
		{Service: "", Address: "1.2.3.4", Port: 1},
		{Service: "a/b", Address: "1.2.3.4", Port: 1},
		{Service: "s", Address: "", Port: 1},
		{Service: "s", Address: "1.2.3.4", Port: 0},
		{Service: "s", Address: "1.2.3.4", Port: 70000},
	} {
		if err := reg.Register(context.Background(), e, ttl); !errors.Is(err, discovery.ErrInvalidEntry) {
			t.Errorf("Register(%+v) = %v, want ErrInvalidEntry", e, err)
		}
	}
	if err := reg.Register(context.Background(), discovery.Entry{Service: "s", Address: "::1", Port: 1}, 0); !errors.Is(err, discovery.ErrInvalidEntry) {
		t.Errorf("ttl 0: %v, want ErrInvalidEntry", err)
	}
	if got := reg.Key(discovery.Entry{Service: "s", Address: "fd00::1", Port: 80}); got != "p/services/s/[fd00::1]:80" {
		t.Errorf("IPv6 key = %q", got)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"service":"web","address":"10.0.0.1","port":80}`))
	f.Add([]byte(`{"service":"web","address":"fd00::1","port":65535,"metadata":{"a":"b"},"owner":"c/u"}`))
	f.Add([]byte(`{"service":"a/b","address":"x","port":1}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"port":"80"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := discovery.Decode(data)
		if err != nil {
			if !errors.Is(err, discovery.ErrInvalidEntry) {
				t.Fatalf("error %v does not wrap ErrInvalidEntry", err)
			}
			return
		}
		// A decoded entry is valid and survives a round trip.
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded an invalid entry: %v", err)
		}
		raw, _ := json.Marshal(e)
		again, err := discovery.Decode(raw)
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, e)
		}
	})
}
