// Package testservers starts the real servers that kvop's tests run against: etcd (v3 API),
// etcd with the legacy v2 API, ZooKeeper, Consul, and a Kubernetes API server for envtest.
//
// Every server is a child process of the test binary, listening on free 127.0.0.1 ports with a
// data directory of its own. The helpers wait until the server answers, return its address, and
// stop it when the test ends. Each server also offers Kill, Restart (same ports and data),
// Pause and Resume (SIGSTOP/SIGCONT) for fault tests.
//
// Two ways to get a server:
//
//	srv := testservers.Etcd(t)             // one server for this test, stopped by t.Cleanup
//	srv, err := testservers.StartEtcd()    // e.g. in TestMain, shared by a package; call srv.Stop()
//
// The binaries come from `make tools` (hack/tools.sh), which installs each into
// $KVOP_TOOLS/<name>-<version>/ (default ~/.cache/kvop/tools), with versions pinned in
// hack/tools.env. A missing binary is an error that says "run make tools": tests fail, never skip.
package testservers
