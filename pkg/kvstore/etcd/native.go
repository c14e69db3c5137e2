package etcd

import clientv3 "go.etcd.io/etcd/client/v3"

// Client returns the store's etcd client, for what the Store API cannot express: keys outside
// the normalised namespace, such as the absolute "/skydns/..." paths CoreDNS reads. It lives as
// long as the store: Close closes it, ending the keep-alives of leases granted through it.
func (s *Store) Client() *clientv3.Client { return s.cli }
