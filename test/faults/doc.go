// Package faults holds fault tests of kvop's libraries (kvstore, leadership, discovery) against
// real replicated backends: a 3-member etcd cluster (and etcd 3.4 with the v2 API), a 3-server
// ZooKeeper ensemble and a 3-server Consul cluster, each started by internal/testservers. The
// tests kill members — the backend's own leader too — and check that clients opened with every
// member's address keep working, that registrations survive and that elections stay safe.
//
// They take minutes and start nine servers, so they are behind the build tag "faults":
//
//	make test-faults        # go test -race -count=1 -tags faults ./test/faults/...
//
// docs/reliability.md ("Backend clusters") records what they measured.
package faults
