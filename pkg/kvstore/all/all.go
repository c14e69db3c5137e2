// Package all registers every kvstore backend. Import it for its side effect:
//
//	import _ "github.com/kvop/kvop/pkg/kvstore/all"
package all

import (
	_ "github.com/kvop/kvop/pkg/kvstore/boltdb"    // embedded BoltDB file
	_ "github.com/kvop/kvop/pkg/kvstore/consul"    // Consul KV
	_ "github.com/kvop/kvop/pkg/kvstore/etcd"      // etcd v3 API
	_ "github.com/kvop/kvop/pkg/kvstore/etcdv2"    // legacy etcd v2 API
	_ "github.com/kvop/kvop/pkg/kvstore/zookeeper" // ZooKeeper
)
