package zookeeper

import (
	"net/url"
	"path"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Layout of the ZooKeeper tree (see the package doc):
//
//	/a/b                      user key "a/b" (znode data: header byte + value)
//	/a                        implicit parent of "a/b" unless it holds a value itself (empty data)
//	/_kvop/locks/<esc key>/   lock queue of key (a container node), <esc key> = url.PathEscape(key)
//	/_kvop/locks/<esc key>/_c_<guid>-lock-0000000007   one contender (ephemeral, sequential)
//
// A user key's first segment that is "zookeeper" (ZooKeeper's own subtree) or starts with
// "_kvop" is stored as "_kvop~<segment>", so no user key can reach /zookeeper or /_kvop.
const (
	internalRoot = "/_kvop"
	locksRoot    = internalRoot + "/locks"
	escapePrefix = "_kvop~"
)

// keyHeader starts the data of every node that holds a value. A node with empty data is an
// implicit parent (not a key), which is how an empty value stays distinguishable from "absent".
// A non-empty node written by another tool without the header is read as a raw value.
const keyHeader byte = 0

// znodePath maps a normalised key to its znode path.
func znodePath(key string) string {
	first, rest, _ := strings.Cut(key, "/")
	if first == "zookeeper" || strings.HasPrefix(first, "_kvop") {
		first = escapePrefix + first
	}
	if rest == "" {
		return "/" + first
	}
	return "/" + first + "/" + rest
}

// parentPath returns the parent znode of p, "/" for a top-level node.
func parentPath(p string) string { return path.Dir(p) }

// lockQueuePath is the queue directory of the lock on key: one segment, so locks on "a" and
// "a/b" never share a queue and no key can collide with a queue entry.
func lockQueuePath(key string) string { return locksRoot + "/" + url.PathEscape(key) }

// encodeValue returns the node data for a key holding value.
func encodeValue(value []byte) []byte {
	out := make([]byte, 1+len(value))
	out[0] = keyHeader
	copy(out[1:], value)
	return out
}

// decodeValue returns the value of a node and whether the node is a key at all.
func decodeValue(data []byte) ([]byte, bool) {
	if len(data) == 0 {
		return nil, false
	}
	if data[0] == keyHeader {
		return append([]byte{}, data[1:]...), true
	}
	return append([]byte{}, data...), true
}

// pairOf builds the pair of key from a node's data and stat; nil when the node is no key.
func pairOf(key string, data []byte, stat *zk.Stat) *kvstore.KVPair {
	value, ok := decodeValue(data)
	if !ok || stat == nil {
		return nil
	}
	return &kvstore.KVPair{Key: key, Value: value, LastIndex: uint64(stat.Mzxid)}
}

// acl returns the ACL of the nodes this store creates: readable and writable only by the
// digest user when credentials are configured, by anyone otherwise.
func (s *Store) acl() []zk.ACL {
	if s.cfg.Username != "" {
		return zk.DigestACL(zk.PermAll, s.cfg.Username, s.cfg.Password)
	}
	return zk.WorldACL(zk.PermAll)
}

// sharedACL is the ACL of /_kvop and /_kvop/locks, which clients with different credentials
// share: everyone may create and remove their own entries below, nobody may change the ACL.
func sharedACL() []zk.ACL {
	return zk.WorldACL(zk.PermRead | zk.PermWrite | zk.PermCreate | zk.PermDelete)
}
