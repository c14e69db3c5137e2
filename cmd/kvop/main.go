// Command kvop reads and writes keys, runs a command only while it leads an election, and
// registers service endpoints — on Consul, etcd (v3 and v2), ZooKeeper or a BoltDB file.
//
// The command code lives in internal/cli, where it can be unit-tested and fuzzed; this file
// only hands it the process's arguments, streams and environment. `kvop --help` documents the
// commands, flags, environment variables and exit codes.
package main

import (
	"os"

	"github.com/kvop/kvop/internal/cli"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3" ./cmd/kvop
var version = "dev"

func main() {
	os.Exit(cli.Main(version))
}
