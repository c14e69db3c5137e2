// Package operatorfaults holds kvop's operator-level fault tests (issue 11): the whole manager
// against real backends and a real API server while something goes wrong underneath it.
//
// The slow ones — a backend killed and restarted (with its data, then empty), a ZooKeeper
// session expired and Consul sessions destroyed, a manager leader-election handover — are
// behind the build tag "faults" (make test-faults). The quick ones run with every `go test`:
// no Secret value ever reaches a log line, an event or a status; the controllers work with the
// permissions of config/rbac/role.yaml and nothing more.
//
// Each test logs its figures (how long each recovery took) as "figure:" lines, which
// docs/reliability.md quotes.
package operatorfaults
