package discovery_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kvop/kvop/pkg/discovery"
	"github.com/kvop/kvop/pkg/kvstore"
	_ "github.com/kvop/kvop/pkg/kvstore/boltdb"
)

// Register two endpoints of a service and read them back, on the embedded BoltDB store.
func Example() {
	dir, _ := os.MkdirTemp("", "kvop-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, err := kvstore.New(ctx, kvstore.BoltDB, []string{filepath.Join(dir, "kv.db")}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	reg := discovery.NewRegistry(store, "kvop")
	for _, ip := range []string{"10.0.0.2", "10.0.0.1"} {
		e := discovery.Entry{Service: "web", Address: ip, Port: 8080}
		if err := reg.Register(ctx, e, 15*time.Second); err != nil {
			fmt.Println(err)
			return
		}
	}
	entries, _ := reg.Entries(ctx, "web")
	for _, e := range entries {
		fmt.Println(reg.Key(e))
	}
	// Output:
	// kvop/services/web/10.0.0.1:8080
	// kvop/services/web/10.0.0.2:8080
}
