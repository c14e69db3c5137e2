package kvstore

import "time"

// TTLBound is how long after its last write (or refresh) a TTL key of backend, or the lock of a
// holder that died, may still be seen: the time the conformance suite allows for it to vanish.
// sessionTimeout is the ZooKeeper session timeout (0 means DefaultSessionTimeout); other
// backends ignore it.
//
//	etcd, etcdv2, boltdb: ttl + 1s
//	zookeeper:            ttl + session timeout
//	consul:               2 × max(ttl, 10s) + 1s   (Consul expires a session up to 2 × its TTL,
//	                      and its TTL floor is the server's session_ttl_min, 10s by default;
//	                      on a server with a lower floor the real bound is 2 × ttl + 1s)
func TTLBound(backend Backend, ttl, sessionTimeout time.Duration) time.Duration {
	switch backend {
	case ZooKeeper:
		if sessionTimeout <= 0 {
			sessionTimeout = DefaultSessionTimeout
		}
		return ttl + sessionTimeout
	case Consul:
		return 2*max(ttl, 10*time.Second) + time.Second
	default:
		return ttl + time.Second
	}
}
