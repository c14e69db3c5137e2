package zookeeper

import (
	"context"
	"errors"

	"github.com/go-zookeeper/zk"
)

// Typed ZooKeeper requests, each bounded by call.

type nodeData struct {
	data []byte
	stat *zk.Stat
}

func (s *Store) zget(ctx context.Context, p string) ([]byte, *zk.Stat, error) {
	r, err := call(s, ctx, func() (nodeData, error) {
		d, st, err := s.conn.Get(p)
		return nodeData{d, st}, err
	})
	return r.data, r.stat, err
}

func (s *Store) zgetW(ctx context.Context, p string) ([]byte, *zk.Stat, error) {
	r, err := call(s, ctx, func() (nodeData, error) {
		d, st, _, err := s.conn.GetW(p)
		return nodeData{d, st}, err
	})
	return r.data, r.stat, err
}

type existence struct {
	ok   bool
	stat *zk.Stat
}

// zexistsW arms a watch on p whether or not it exists (creation, change or deletion fire it).
func (s *Store) zexistsW(ctx context.Context, p string) (bool, *zk.Stat, error) {
	r, err := call(s, ctx, func() (existence, error) {
		ok, st, _, err := s.conn.ExistsW(p)
		return existence{ok, st}, err
	})
	return r.ok, r.stat, err
}

func (s *Store) zexists(ctx context.Context, p string) (bool, *zk.Stat, error) {
	r, err := call(s, ctx, func() (existence, error) {
		ok, st, err := s.conn.Exists(p)
		return existence{ok, st}, err
	})
	return r.ok, r.stat, err
}

func (s *Store) zchildren(ctx context.Context, p string) ([]string, error) {
	return call(s, ctx, func() ([]string, error) {
		kids, _, err := s.conn.Children(p)
		return kids, err
	})
}

func (s *Store) zchildrenW(ctx context.Context, p string) ([]string, error) {
	return call(s, ctx, func() ([]string, error) {
		kids, _, _, err := s.conn.ChildrenW(p)
		return kids, err
	})
}

func (s *Store) zset(ctx context.Context, p string, data []byte, version int32) (*zk.Stat, error) {
	return call(s, ctx, func() (*zk.Stat, error) { return s.conn.Set(p, data, version) })
}

func (s *Store) zdelete(ctx context.Context, p string, version int32) error {
	return s.do(ctx, func() error { return s.conn.Delete(p, version) })
}

func (s *Store) zcreate(ctx context.Context, p string, data []byte, flags int32, acl []zk.ACL) (string, error) {
	return call(s, ctx, func() (string, error) { return s.conn.Create(p, data, flags, acl) })
}

// zmulti runs ops as one transaction and returns the first failing operation's error.
func (s *Store) zmulti(ctx context.Context, ops ...interface{}) ([]zk.MultiResponse, error) {
	return call(s, ctx, func() ([]zk.MultiResponse, error) { return s.conn.Multi(ops...) })
}

// zcreateStat creates a node and returns its Stat in the same round trip: ZooKeeper's create
// answers with the path only, so the transaction sets the new node's data once more, which
// answers with the Stat (Mzxid is the transaction's zxid: a fresh, never repeated LastIndex).
func (s *Store) zcreateStat(ctx context.Context, p string, data []byte, flags int32) (*zk.Stat, error) {
	res, err := s.zmulti(ctx,
		&zk.CreateRequest{Path: p, Data: data, Acl: s.acl(), Flags: flags},
		&zk.SetDataRequest{Path: p, Data: data, Version: 0})
	if err != nil {
		return nil, err
	}
	return lastStat(res)
}

// zreplace atomically deletes the node at p (only at version) and creates it anew with flags:
// ZooKeeper cannot turn an ephemeral node into a persistent one or back.
func (s *Store) zreplace(ctx context.Context, p string, version int32, data []byte, flags int32) (*zk.Stat, error) {
	res, err := s.zmulti(ctx,
		&zk.DeleteRequest{Path: p, Version: version},
		&zk.CreateRequest{Path: p, Data: data, Acl: s.acl(), Flags: flags},
		&zk.SetDataRequest{Path: p, Data: data, Version: 0})
	if err != nil {
		return nil, err
	}
	return lastStat(res)
}

func lastStat(res []zk.MultiResponse) (*zk.Stat, error) {
	if len(res) == 0 || res[len(res)-1].Stat == nil {
		return nil, errors.New("zookeeper: transaction answered without a stat")
	}
	return res[len(res)-1].Stat, nil
}

// ensureParents creates every missing ancestor of p as an implicit parent (empty data).
// Ancestors that exist are left alone, whatever they hold.
func (s *Store) ensureParents(ctx context.Context, p string) error {
	parent := parentPath(p)
	if parent == "/" {
		return nil
	}
	_, err := s.zcreate(ctx, parent, nil, zk.FlagPersistent, s.acl())
	switch {
	case err == nil, errors.Is(err, zk.ErrNodeExists):
		return nil
	case errors.Is(err, zk.ErrNoNode):
		if err := s.ensureParents(ctx, parent); err != nil {
			return err
		}
		_, err = s.zcreate(ctx, parent, nil, zk.FlagPersistent, s.acl())
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	default:
		return err
	}
}
