package consul_test

import (
	"context"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore/kvtest"
)

// BenchmarkPutForms measures the requests a Put could be made of, with the bare client on one
// server, to tell what kvop's Put (the transaction [delete, set], see the package doc) costs
// over a plain KV PUT: the transaction endpoint, or its delete.
//
//	go test -run '^$' -bench BenchmarkPutForms -count 5 ./pkg/kvstore/consul
func BenchmarkPutForms(b *testing.B) {
	srv := testservers.Consul(b)
	c := rawClient(b, srv)
	value := make([]byte, kvtest.BenchValueSize)
	ctx := context.Background()
	w := (&api.WriteOptions{}).WithContext(ctx)
	q := (&api.QueryOptions{}).WithContext(ctx)
	txn := func(b *testing.B, ops ...*api.KVTxnOp) {
		tx := make(api.TxnOps, len(ops))
		for i, op := range ops {
			tx[i] = &api.TxnOp{KV: op}
		}
		for b.Loop() {
			ok, _, _, err := c.Txn().Txn(tx, q)
			if err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	}
	b.Run("put", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.KV().Put(&api.KVPair{Key: "putforms/put", Value: value}, w); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("txn-set", func(b *testing.B) {
		txn(b, &api.KVTxnOp{Verb: api.KVSet, Key: "putforms/set", Value: value})
	})
	b.Run("txn-delete-set", func(b *testing.B) {
		txn(b, &api.KVTxnOp{Verb: api.KVDelete, Key: "putforms/ds"}, &api.KVTxnOp{Verb: api.KVSet, Key: "putforms/ds", Value: value})
	})
}
