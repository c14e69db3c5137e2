package zookeeper

import (
	"testing"
	"time"

	"github.com/kvop/kvop/internal/testservers"
	"github.com/kvop/kvop/pkg/kvstore"
	"github.com/kvop/kvop/pkg/kvstore/kvtest"
)

func TestMain(m *testing.M) { kvtest.Main(m) }

// testSession is the session timeout of the tests: short, so that TTL bounds and session
// expiry are quick to observe (the test server allows sessions from 400 ms).
const testSession = 2 * time.Second

func TestConformance(t *testing.T) {
	srv := testservers.ZooKeeper(t)
	kvtest.Run(t, kvtest.Suite{
		Backend: kvstore.ZooKeeper,
		Addrs:   srv.Endpoints(),
		Config:  &kvstore.Config{SessionTimeout: testSession},
	})
}
