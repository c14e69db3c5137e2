package etcdv2_test

import (
	"context"
	"testing"

	client "go.etcd.io/etcd/client/v2"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/kvstore/kvtest"
)

func TestMain(m *testing.M) { kvtest.Main(m) }

func TestConformance(t *testing.T) {
	srv := testservers.EtcdV2(t)
	kvtest.Run(t, kvtest.Suite{Backend: kvstore.EtcdV2, Addrs: srv.Endpoints()})
}

// BenchmarkStore compares kvop's store with the plain v2 client doing the same work. The raw
// client reads with quorum as the store does (linearizable Get and List), so the difference
// is the store's own cost: the layout, the value encoding and the error translation.
func BenchmarkStore(b *testing.B) {
	srv := testservers.EtcdV2(b)
	b.Run("kvop", func(b *testing.B) {
		kvtest.Bench(b, func(b *testing.B) kvstore.Store {
			st, err := kvstore.New(b.Context(), kvstore.EtcdV2, srv.Endpoints(), nil)
			if err != nil {
				b.Fatal(err)
			}
			return st
		})
	})
	b.Run("raw", func(b *testing.B) { kvtest.BenchOps(b, rawOps(raw(b, srv, "", ""))) })
}

func rawOps(kapi client.KeysAPI) kvtest.Ops {
	const prefix = "/raw-bench/"
	quorum := &client.GetOptions{Quorum: true}
	return kvtest.Ops{
		Put: func(ctx context.Context, key string, value []byte) error {
			_, err := kapi.Set(ctx, prefix+key, string(value), nil)
			return err
		},
		Get: func(ctx context.Context, key string) ([]byte, error) {
			resp, err := kapi.Get(ctx, prefix+key, quorum)
			if err != nil {
				return nil, err
			}
			return []byte(resp.Node.Value), nil
		},
		AtomicPut: func(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
			resp, err := kapi.Set(ctx, prefix+key, string(value), &client.SetOptions{PrevIndex: index})
			if err != nil {
				return 0, err
			}
			return resp.Node.ModifiedIndex, nil
		},
		Version: func(ctx context.Context, key string) (uint64, error) {
			resp, err := kapi.Get(ctx, prefix+key, quorum)
			if err != nil {
				return 0, err
			}
			return resp.Node.ModifiedIndex, nil
		},
		List: func(ctx context.Context, dir string) (int, error) {
			resp, err := kapi.Get(ctx, prefix+dir, &client.GetOptions{Recursive: true, Quorum: true})
			if err != nil {
				return 0, err
			}
			var count func(n *client.Node) int
			count = func(n *client.Node) int {
				if !n.Dir {
					return 1
				}
				c := 0
				for _, child := range n.Nodes {
					c += count(child)
				}
				return c
			}
			return count(resp.Node), nil
		},
		DeleteTree: func(ctx context.Context, dir string) error {
			_, err := kapi.Delete(ctx, prefix+dir, &client.DeleteOptions{Dir: true, Recursive: true})
			if e, ok := err.(client.Error); ok && e.Code == client.ErrorCodeKeyNotFound {
				return nil
			}
			return err
		},
	}
}
