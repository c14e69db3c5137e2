package zookeeper

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Delete removes key. A key that has keys below it keeps its node as their implicit parent
// (its data is emptied); otherwise the node goes, and so do implicit parents left empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, p, err := s.normalize("delete", key)
	if err != nil {
		return err
	}
	s.ttls.forget(p)
	return s.fail("delete", k, s.remove(ctx, p, false, 0))
}

// AtomicDelete deletes key only if its LastIndex is still previous.LastIndex.
func (s *Store) AtomicDelete(ctx context.Context, key string, previous *kvstore.KVPair) (bool, error) {
	k, p, err := s.normalize("atomicdelete", key)
	if err != nil {
		return false, err
	}
	if previous == nil {
		return false, s.fail("atomicdelete", k, kvstore.ErrPreviousNotSpecified)
	}
	if err := s.remove(ctx, p, true, previous.LastIndex); err != nil {
		return false, s.fail("atomicdelete", k, err)
	}
	s.ttls.forget(p)
	return true, nil
}

// remove deletes the key at p; with checked, only while its Mzxid is index (else
// ErrKeyModified, or ErrKeyNotFound when there is no key).
func (s *Store) remove(ctx context.Context, p string, checked bool, index uint64) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		data, stat, err := s.zget(ctx, p)
		if errors.Is(err, zk.ErrNoNode) {
			if checked {
				return kvstore.ErrKeyNotFound
			}
			return nil
		}
		if err != nil {
			return err
		}
		if _, isKey := decodeValue(data); !isKey {
			if checked {
				return kvstore.ErrKeyNotFound
			}
			return nil
		}
		if checked && uint64(stat.Mzxid) != index {
			return kvstore.ErrKeyModified
		}
		version := stat.Version
		if !checked {
			version = -1
		}
		if stat.NumChildren > 0 {
			_, err = s.zset(ctx, p, nil, version)
		} else {
			err = s.zdelete(ctx, p, version)
		}
		switch {
		case errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNoNode), errors.Is(err, zk.ErrNotEmpty):
			continue // changed meanwhile: look again
		case err != nil:
			return err
		}
		if stat.NumChildren == 0 {
			s.prune(ctx, parentPath(p))
		}
		return nil
	}
	return fmt.Errorf("gave up after %d attempts: the node kept changing", maxAttempts)
}

// prune deletes p and then its ancestors while they are implicit parents without children.
// It is best effort: a node that gained a child or a value meanwhile makes ZooKeeper refuse
// the conditional delete, which ends the climb, and a writer that loses its freshly created
// parent to a prune re-creates it (see write).
func (s *Store) prune(ctx context.Context, p string) {
	for ; p != "/" && p != ""; p = parentPath(p) {
		data, stat, err := s.zget(ctx, p)
		if err != nil || len(data) > 0 || stat.NumChildren > 0 || stat.EphemeralOwner != 0 {
			return
		}
		if err := s.zdelete(ctx, p, stat.Version); err != nil {
			return
		}
	}
}

// deleteBatch is how many deletes DeleteTree sends in one transaction.
const deleteBatch = 128

// DeleteTree removes every key below directory (and the implicit parents between them);
// directory itself stays if it is a key.
func (s *Store) DeleteTree(ctx context.Context, directory string) error {
	dir, p, err := s.normalize("deletetree", directory)
	if err != nil {
		return err
	}
	nodes, err := s.walk(ctx, p, false)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return s.fail("deletetree", dir, err)
	}
	s.ttls.forgetBelow(p)
	// Children before parents: walk lists parents first.
	paths := make([]string, 0, len(nodes))
	for i := len(nodes) - 1; i >= 0; i-- {
		paths = append(paths, nodes[i].path)
	}
	for len(paths) > 0 {
		n := min(deleteBatch, len(paths))
		if err := s.deleteAll(ctx, paths[:n]); err != nil {
			return s.fail("deletetree", dir, err)
		}
		paths = paths[n:]
	}
	s.prune(ctx, p)
	return nil
}

// deleteAll deletes paths (children before parents) in one transaction, or one by one when
// the transaction fails because the tree changed meanwhile.
func (s *Store) deleteAll(ctx context.Context, paths []string) error {
	ops := make([]interface{}, len(paths))
	for i, p := range paths {
		ops[i] = &zk.DeleteRequest{Path: p, Version: -1}
	}
	_, err := s.zmulti(ctx, ops...)
	if err == nil || !(errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrNotEmpty)) {
		return err
	}
	for _, p := range paths {
		err := s.zdelete(ctx, p, -1)
		switch {
		case err == nil, errors.Is(err, zk.ErrNoNode):
		case errors.Is(err, zk.ErrNotEmpty):
			// A key was created below meanwhile: that one stays, but this node must stop
			// being a key if it was one.
			if _, err := s.zset(ctx, p, nil, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
				return err
			}
		default:
			return err
		}
	}
	return nil
}
