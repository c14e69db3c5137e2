package etcd

import (
	"context"
	"errors"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/kvstore/kvtest"
)

// BenchmarkStore measures kvop against the bare etcd client doing the same requests on the
// same server (kvtest's workload), so the difference is kvop's own cost.
func BenchmarkStore(b *testing.B) {
	srv := testservers.Etcd(b)
	b.Run("kvop", func(b *testing.B) {
		kvtest.Bench(b, func(b *testing.B) kvstore.Store {
			st, err := kvstore.New(b.Context(), kvstore.Etcd, srv.Endpoints(), nil)
			if err != nil {
				b.Fatal(err)
			}
			return st
		})
	})
	b.Run("raw", func(b *testing.B) { kvtest.BenchOps(b, rawOps(rawClient(b, srv.Addr))) })
}

// rawOps is the benchmark workload on the bare client: the requests kvop makes, without kvop.
func rawOps(cli *clientv3.Client) kvtest.Ops {
	return kvtest.Ops{
		Put: func(ctx context.Context, key string, value []byte) error {
			_, err := cli.Put(ctx, key, string(value))
			return err
		},
		Get: func(ctx context.Context, key string) ([]byte, error) {
			resp, err := cli.Get(ctx, key)
			if err != nil {
				return nil, err
			}
			if len(resp.Kvs) == 0 {
				return nil, errors.New("not found")
			}
			return resp.Kvs[0].Value, nil
		},
		AtomicPut: func(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
			resp, err := cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", int64(index))).
				Then(clientv3.OpPut(key, string(value))).
				Commit()
			if err != nil {
				return 0, err
			}
			if !resp.Succeeded {
				return 0, fmt.Errorf("%s was modified", key)
			}
			return uint64(resp.Header.Revision), nil
		},
		Version: func(ctx context.Context, key string) (uint64, error) {
			resp, err := cli.Get(ctx, key)
			if err != nil || len(resp.Kvs) == 0 {
				return 0, fmt.Errorf("version of %s: %v", key, err)
			}
			return uint64(resp.Kvs[0].ModRevision), nil
		},
		List: func(ctx context.Context, dir string) (int, error) {
			resp, err := cli.Get(ctx, dir+"/", clientv3.WithPrefix())
			if err != nil {
				return 0, err
			}
			return len(resp.Kvs), nil
		},
		DeleteTree: func(ctx context.Context, dir string) error {
			_, err := cli.Delete(ctx, dir+"/", clientv3.WithPrefix())
			return err
		},
	}
}
