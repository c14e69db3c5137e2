package consul_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

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
