package consul_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/kvstore/kvtest"
)

// BenchmarkStore measures kvop beside the bare consul/api client doing the same work on the
// same server, so the difference is kvop's own cost. Expect kvop's Put to cost a little more:
// it is a transaction ([delete, set]) so that a plain Put always ends a TTL key's expiry.
func BenchmarkStore(b *testing.B) {
	srv := testservers.Consul(b)
	b.Run("kvop", func(b *testing.B) {
		kvtest.Bench(b, func(b *testing.B) kvstore.Store {
			st, err := kvstore.New(context.Background(), kvstore.Consul, srv.Endpoints(), nil)
			if err != nil {
				b.Fatal(err)
			}
			return st
		})
	})
	b.Run("raw", func(b *testing.B) { kvtest.BenchOps(b, rawOps(b, srv)) })
}

// rawOps is the workload on a raw *api.Client, done the way a careful caller would: the
// compare-and-swap is a one-request transaction that returns the new ModifyIndex.
func rawOps(b *testing.B, srv *testservers.Server) kvtest.Ops {
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(transport.CloseIdleConnections)
	c, err := api.NewClient(&api.Config{Address: srv.Addr, Transport: transport, HttpClient: &http.Client{Transport: transport}})
	if err != nil {
		b.Fatal(err)
	}
	kv := c.KV()
	q := func(ctx context.Context) *api.QueryOptions { return (&api.QueryOptions{}).WithContext(ctx) }
	w := func(ctx context.Context) *api.WriteOptions { return (&api.WriteOptions{}).WithContext(ctx) }
	return kvtest.Ops{
		Put: func(ctx context.Context, key string, value []byte) error {
			_, err := kv.Put(&api.KVPair{Key: key, Value: value}, w(ctx))
			return err
		},
		Get: func(ctx context.Context, key string) ([]byte, error) {
			p, _, err := kv.Get(key, q(ctx))
			if err != nil || p == nil {
				return nil, fmt.Errorf("get %q: %v, %v", key, p, err)
			}
			return p.Value, nil
		},
		AtomicPut: func(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
			ok, resp, _, err := c.Txn().Txn(api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: key, Value: value, Index: index}}}, q(ctx))
			if err != nil {
				return 0, err
			}
			if !ok || len(resp.Results) == 0 {
				return 0, fmt.Errorf("cas %q failed: %+v", key, resp.Errors)
			}
			return resp.Results[0].KV.ModifyIndex, nil
		},
		Version: func(ctx context.Context, key string) (uint64, error) {
			p, _, err := kv.Get(key, q(ctx))
			if err != nil || p == nil {
				return 0, fmt.Errorf("get %q: %v, %v", key, p, err)
			}
			return p.ModifyIndex, nil
		},
		List: func(ctx context.Context, dir string) (int, error) {
			l, _, err := kv.List(dir+"/", q(ctx))
			return len(l), err
		},
		DeleteTree: func(ctx context.Context, dir string) error {
			_, err := kv.DeleteTree(dir+"/", w(ctx))
			return err
		},
	}
}

// BenchmarkKeepAliveKeys writes KeepAlive TTL keys (registrations) and reports the sessions
// they cost, which is the renewal load while they live (one renewal per session every TTL/2).
// kvop shares one session among the KeepAlive keys of a TTL; "raw-session-per-key" is the
// usual way with consul/api (libkv's): a session of its own per key, acquired with the key.
func BenchmarkKeepAliveKeys(b *testing.B) {
	srv := testservers.Consul(b)
	ctx := context.Background()
	const ttl = 30 * time.Second
	countSessions := func(b *testing.B) int {
		transport := &http.Transport{}
		defer transport.CloseIdleConnections()
		c, err := api.NewClient(&api.Config{Address: srv.Addr, HttpClient: &http.Client{Transport: transport}})
		if err != nil {
			b.Fatal(err)
		}
		list, _, err := c.Session().List(nil)
		if err != nil {
			b.Fatal(err)
		}
		return len(list)
	}
	b.Run("kvop", func(b *testing.B) {
		st, err := kvstore.New(ctx, kvstore.Consul, srv.Endpoints(), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		before := countSessions(b)
		opts := &kvstore.WriteOptions{TTL: ttl, KeepAlive: true}
		for i := 0; b.Loop(); i++ {
			if err := st.Put(ctx, fmt.Sprintf("bench/kept/kvop/%d", i), []byte("v"), opts); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(countSessions(b)-before), "sessions")
	})
	b.Run("raw-session-per-key", func(b *testing.B) {
		transport := &http.Transport{MaxIdleConnsPerHost: 64}
		defer transport.CloseIdleConnections()
		c, err := api.NewClient(&api.Config{Address: srv.Addr, Transport: transport, HttpClient: &http.Client{Transport: transport}})
		if err != nil {
			b.Fatal(err)
		}
		before := countSessions(b)
		var ids []string
		for i := 0; b.Loop(); i++ {
			id, _, err := c.Session().CreateNoChecks(&api.SessionEntry{TTL: ttl.String(), Behavior: api.SessionBehaviorDelete, LockDelay: time.Millisecond}, nil)
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
			ok, _, err := c.KV().Acquire(&api.KVPair{Key: fmt.Sprintf("bench/kept/raw/%d", i), Value: []byte("v"), Session: id}, nil)
			if err != nil || !ok {
				b.Fatalf("acquire: %v, %v", ok, err)
			}
		}
		b.ReportMetric(float64(countSessions(b)-before), "sessions")
		for _, id := range ids {
			_, _ = c.Session().Destroy(id, nil)
		}
	})
}
