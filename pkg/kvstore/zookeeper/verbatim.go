package zookeeper

import (
	"context"
	"fmt"

	"github.com/kvop/kvop/pkg/kvstore"
)

// PutVerbatim is Put storing value as the node's data exactly, without the header byte that
// Put adds (see the package doc), for nodes that other ZooKeeper clients read — Apache Curator's
// service instances are JSON that Curator parses from the first byte. Get, List and watches
// read such a node back as value. value must neither be empty nor start with a zero byte: that
// data would read back as an implicit parent or lose its first byte.
func (s *Store) PutVerbatim(ctx context.Context, key string, value []byte, opts *kvstore.WriteOptions) error {
	k, p, err := s.normalize("put", key)
	if err != nil {
		return err
	}
	if len(value) == 0 || value[0] == keyHeader {
		return s.fail("put", k, kvstore.Mark(kvstore.ErrInvalidKey,
			fmt.Errorf("a verbatim value must be non-empty and not start with a zero byte")))
	}
	_, err = s.write(ctx, k, p, value, append([]byte{}, value...), opts, always, 0)
	return s.fail("put", k, err)
}
