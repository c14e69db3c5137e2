package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/kvop/kvop/internal/testservers"
)

// BenchmarkStore measures kvop against the bare ZooKeeper client doing the equivalent requests
// on the same server, so the difference is kvop's own cost (the header byte, the goroutine that
// bounds each request, the read before a conditional write, the parallel walk of List).
func BenchmarkStore(b *testing.B) {
	srv := testservers.ZooKeeper(b)
	ctx := context.Background()
	value := []byte("a value of some thirty-two bytes")

	b.Run("kvop", func(b *testing.B) {
		st := open(b, srv.Endpoints(), nil)
		b.Run("Put", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if err := st.Put(ctx, fmt.Sprintf("bench/kvop/put/%d", i%1000), value, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Get", func(b *testing.B) {
			_ = st.Put(ctx, "bench/kvop/get", value, nil)
			for b.Loop() {
				if _, err := st.Get(ctx, "bench/kvop/get"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("AtomicPut", func(b *testing.B) {
			_ = st.Delete(ctx, "bench/kvop/cas")
			_, prev, err := st.AtomicPut(ctx, "bench/kvop/cas", value, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, prev, err = st.AtomicPut(ctx, "bench/kvop/cas", value, prev, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("List1000", func(b *testing.B) {
			for i := range 1000 {
				_ = st.Put(ctx, fmt.Sprintf("bench/kvop/list/%04d", i), value, nil)
			}
			for b.Loop() {
				if l, err := st.List(ctx, "bench/kvop/list"); err != nil || len(l) != 1000 {
					b.Fatal(len(l), err)
				}
			}
		})
	})

	b.Run("raw", func(b *testing.B) {
		conn := rawConn(b, srv.Endpoints())
		acl := zk.WorldACL(zk.PermAll)
		for _, p := range []string{"/rawbench", "/rawbench/put", "/rawbench/list"} {
			_, _ = conn.Create(p, nil, 0, acl)
		}
		// Put is create-or-set, as a plain ZooKeeper client writes a key.
		put := func(p string) error {
			_, err := conn.Set(p, value, -1)
			if errors.Is(err, zk.ErrNoNode) {
				_, err = conn.Create(p, value, 0, acl)
			}
			return err
		}
		b.Run("Put", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if err := put(fmt.Sprintf("/rawbench/put/%d", i%1000)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Get", func(b *testing.B) {
			_ = put("/rawbench/get")
			for b.Loop() {
				if _, _, err := conn.Get("/rawbench/get"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("AtomicPut", func(b *testing.B) {
			_ = put("/rawbench/cas")
			_, stat, err := conn.Get("/rawbench/cas")
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if stat, err = conn.Set("/rawbench/cas", value, stat.Version); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("List1000", func(b *testing.B) {
			for i := range 1000 {
				_ = put(fmt.Sprintf("/rawbench/list/%04d", i))
			}
			for b.Loop() {
				kids, _, err := conn.Children("/rawbench/list")
				if err != nil {
					b.Fatal(err)
				}
				// Read every value, pipelined as kvop does.
				errs := make(chan error, len(kids))
				for _, k := range kids {
					go func() {
						_, _, err := conn.Get("/rawbench/list/" + k)
						errs <- err
					}()
				}
				for range kids {
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	})
}
