package leadership_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kvop/kvop/pkg/kvstore"
	_ "github.com/kvop/kvop/pkg/kvstore/boltdb"
	"github.com/kvop/kvop/pkg/leadership"
)

// Two candidates campaign for one key; a follower names the leader. When the leader resigns,
// the waiting candidate takes over with a higher fencing term.
func Example() {
	dir, _ := os.MkdirTemp("", "kvop-example-")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := kvstore.New(ctx, kvstore.BoltDB, []string{filepath.Join(dir, "kv.db")}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	first := leadership.NewCandidate(store, "leases/payments", "node-a", 15*time.Second)
	firstElected, _ := first.RunForElection(ctx)
	fmt.Println("node-a leads:", <-firstElected)

	follower := leadership.NewFollower(store, "leases/payments")
	leaders, _ := follower.FollowElection(ctx)
	fmt.Println("follower sees:", <-leaders)

	second := leadership.NewCandidate(store, "leases/payments", "node-b", 15*time.Second)
	secondElected, _ := second.RunForElection(ctx)

	oldTerm := first.Term()
	first.Resign()
	fmt.Println("node-a leads:", <-firstElected)
	fmt.Println("node-b leads:", <-secondElected)
	for leader := range leaders {
		if leader == "node-b" {
			break
		}
	}
	fmt.Println("follower sees: node-b")
	fmt.Println("higher term:", second.Term() > oldTerm)
	// Output:
	// node-a leads: true
	// follower sees: node-a
	// node-a leads: false
	// node-b leads: true
	// follower sees: node-b
	// higher term: true
}
