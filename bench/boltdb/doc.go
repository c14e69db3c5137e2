// Package boltdb benchmarks Put throughput of kvop's embedded BoltDB store under concurrent
// writers, against the way libkv's boltdb store worked: one mutex per store, and the file
// opened, written and closed again on every call (its default, PersistConnection=false).
//
//	go test -run '^$' -bench . -benchmem ./bench/boltdb
//
// The benchmark lives here, not in pkg/kvstore/boltdb, because it is one of issue 10's
// side-by-side measurements; the package has no other code.
package boltdb
