package consul

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/kvop/kvop/pkg/kvstore"
)

// toPair converts a Consul entry; Consul's ModifyIndex is a raft index, so it never repeats,
// even for a key that is deleted and created again.
func toPair(p *api.KVPair) *kvstore.KVPair {
	value := p.Value
	if value == nil {
		value = []byte{} // an empty value is a present key, not an absent one
	}
	return &kvstore.KVPair{Key: p.Key, Value: value, LastIndex: p.ModifyIndex}
}

func (s *store) Get(ctx context.Context, key string) (*kvstore.KVPair, error) {
	k, err := kvstore.NormalizeKey(key)
	if err != nil {
		return nil, wrap("get", key, err)
	}
	p, _, err := s.get(ctx, k, 0)
	if err != nil {
		return nil, wrap("get", k, err)
	}
	if p == nil {
		return nil, wrap("get", k, kvstore.ErrKeyNotFound)
	}
	return toPair(p), nil
}

// get reads a key; with waitIndex > 0 it is a blocking query that returns once the key's
// index passes waitIndex (or after blockWait). It returns the X-Consul-Index to wait on next.
func (s *store) get(ctx context.Context, key string, waitIndex uint64) (*api.KVPair, uint64, error) {
	var (
		pair *api.KVPair
		meta *api.QueryMeta
	)
	err := s.call(ctx, false, s.queryTimeout(waitIndex), func(ctx context.Context, c *api.Client) error {
		var err error
		pair, meta, err = c.KV().Get(key, s.queryOpts(ctx, waitIndex))
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return pair, meta.LastIndex, nil
}

func (s *store) Exists(ctx context.Context, key string) (bool, error) {
	k, err := kvstore.NormalizeKey(key)
	if err != nil {
		return false, wrap("exists", key, err)
	}
	p, _, err := s.get(ctx, k, 0)
	if err != nil {
		return false, wrap("exists", k, err)
	}
	return p != nil, nil
}

func (s *store) List(ctx context.Context, directory string) ([]*kvstore.KVPair, error) {
	dir, err := kvstore.NormalizeKey(directory)
	if err != nil {
		return nil, wrap("list", directory, err)
	}
	pairs, _, err := s.list(ctx, dir, 0)
	if err != nil {
		return nil, wrap("list", dir, err)
	}
	if len(pairs) == 0 {
		return nil, wrap("list", dir, kvstore.ErrKeyNotFound)
	}
	return pairs, nil
}

// list reads every key strictly below dir, sorted; waitIndex as for get.
func (s *store) list(ctx context.Context, dir string, waitIndex uint64) ([]*kvstore.KVPair, uint64, error) {
	var (
		entries api.KVPairs
		meta    *api.QueryMeta
	)
	err := s.call(ctx, false, s.queryTimeout(waitIndex), func(ctx context.Context, c *api.Client) error {
		var err error
		entries, meta, err = c.KV().List(dir+"/", s.queryOpts(ctx, waitIndex))
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if len(entries) == 0 && meta.ResultsFilteredByACLs {
		// Consul hides keys the token may not read; when it hid everything, say so rather
		// than pretend the directory is empty.
		return nil, 0, kvstore.Mark(kvstore.ErrAuthFailed, fmt.Errorf("the ACL token may not read the keys below %q", dir))
	}
	pairs := make([]*kvstore.KVPair, 0, len(entries))
	for _, e := range entries {
		// "dir/" and "dir/x/" are Consul folder entries (made by other tools), not keys.
		if strings.HasSuffix(e.Key, "/") || !kvstore.IsBelow(e.Key, dir) {
			continue
		}
		pairs = append(pairs, toPair(e))
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].Key < pairs[j].Key })
	return pairs, meta.LastIndex, nil
}

// Put writes key. Without TTL it replaces the key in one transaction that deletes it first:
// Consul keeps a key's session across a plain write, so that is what unbinds it from any TTL
// session (the key no longer expires) and what moves LastIndex even when the value is the
// same (Consul skips writes of identical entries).
func (s *store) Put(ctx context.Context, key string, value []byte, opts *kvstore.WriteOptions) error {
	k, err := kvstore.NormalizeKey(key)
	if err != nil {
		return wrap("put", key, err)
	}
	mu := s.keyLock(k)
	mu.Lock()
	defer mu.Unlock()
	if opts != nil && opts.TTL > 0 {
		_, _, err := s.writeTTL(ctx, k, value, nil, opts)
		return wrap("put", k, err)
	}
	_, failed, err := s.txn(ctx, api.KVTxnOps{
		{Verb: api.KVDelete, Key: k},
		{Verb: api.KVSet, Key: k, Value: value},
	})
	if err == nil && failed != nil {
		err = failed
	}
	if err != nil {
		return wrap("put", k, err)
	}
	s.forgetTTLKey(ctx, k)
	return nil
}

func (s *store) Delete(ctx context.Context, key string) error {
	k, err := kvstore.NormalizeKey(key)
	if err != nil {
		return wrap("delete", key, err)
	}
	mu := s.keyLock(k)
	mu.Lock()
	defer mu.Unlock()
	err = s.call(ctx, true, s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
		_, err := c.KV().Delete(k, writeOpts(ctx))
		return err
	})
	if err != nil {
		return wrap("delete", k, err)
	}
	s.forgetTTLKey(ctx, k)
	return nil
}

func (s *store) DeleteTree(ctx context.Context, directory string) error {
	dir, err := kvstore.NormalizeKey(directory)
	if err != nil {
		return wrap("deletetree", directory, err)
	}
	err = s.call(ctx, true, s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
		_, err := c.KV().DeleteTree(dir+"/", writeOpts(ctx))
		return err
	})
	if err != nil {
		return wrap("deletetree", dir, err)
	}
	for _, k := range s.ttlKeysBelow(dir) {
		mu := s.keyLock(k)
		mu.Lock()
		s.forgetTTLKey(ctx, k)
		mu.Unlock()
	}
	return nil
}

// AtomicPut is one transaction: a check (the key is absent, or its ModifyIndex is still
// previous.LastIndex), then the same delete-and-write as Put (or as a TTL Put).
func (s *store) AtomicPut(ctx context.Context, key string, value []byte, previous *kvstore.KVPair, opts *kvstore.WriteOptions) (bool, *kvstore.KVPair, error) {
	k, err := kvstore.NormalizeKey(key)
	if err != nil {
		return false, nil, wrap("atomicput", key, err)
	}
	mu := s.keyLock(k)
	mu.Lock()
	defer mu.Unlock()
	check := &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: k}
	if previous != nil {
		check = &api.KVTxnOp{Verb: api.KVCheckIndex, Key: k, Index: previous.LastIndex}
	}
	var (
		result *api.KVPair
		failed *txnFailure
	)
	if opts != nil && opts.TTL > 0 {
		result, failed, err = s.writeTTL(ctx, k, value, check, opts)
	} else {
		result, failed, err = s.txn(ctx, api.KVTxnOps{
			check,
			{Verb: api.KVDelete, Key: k},
			{Verb: api.KVSet, Key: k, Value: value},
		})
		if err == nil && failed == nil {
			s.forgetTTLKey(ctx, k)
		}
	}
	if err != nil {
		return false, nil, wrap("atomicput", k, err)
	}
	if failed != nil {
		if failed.op != 0 {
			return false, nil, wrap("atomicput", k, failed)
		}
		return false, nil, wrap("atomicput", k, s.casFailure(ctx, k, previous))
	}
	if result == nil {
		return false, nil, wrap("atomicput", k, fmt.Errorf("the transaction succeeded but returned no entry"))
	}
	pair := toPair(result)
	pair.Key, pair.Value = k, append([]byte{}, value...)
	return true, pair, nil
}

func (s *store) AtomicDelete(ctx context.Context, key string, previous *kvstore.KVPair) (bool, error) {
	k, err := kvstore.NormalizeKey(key)
	if err != nil {
		return false, wrap("atomicdelete", key, err)
	}
	if previous == nil {
		return false, wrap("atomicdelete", k, kvstore.ErrPreviousNotSpecified)
	}
	mu := s.keyLock(k)
	mu.Lock()
	defer mu.Unlock()
	// Not KV().DeleteCAS: Consul reports a delete-cas of an absent key as a success.
	_, failed, err := s.txn(ctx, api.KVTxnOps{
		{Verb: api.KVCheckIndex, Key: k, Index: previous.LastIndex},
		{Verb: api.KVDelete, Key: k},
	})
	if err != nil {
		return false, wrap("atomicdelete", k, err)
	}
	if failed != nil {
		return false, wrap("atomicdelete", k, s.casFailure(ctx, k, previous))
	}
	s.forgetTTLKey(ctx, k)
	return true, nil
}

// casFailure tells why a compare-and-swap on key failed.
func (s *store) casFailure(ctx context.Context, key string, previous *kvstore.KVPair) error {
	if previous == nil {
		return kvstore.ErrKeyExists
	}
	p, _, err := s.get(ctx, key, 0)
	switch {
	case err != nil:
		return fmt.Errorf("%w (and reading the key failed: %w)", kvstore.ErrKeyModified, err)
	case p == nil:
		return kvstore.ErrKeyNotFound
	default:
		return kvstore.ErrKeyModified
	}
}

// txnFailure is a transaction the server rolled back: op is the index of the first failed
// operation and what the server's reason.
type txnFailure struct {
	op   int
	what string
}

func (f *txnFailure) Error() string {
	return fmt.Sprintf("transaction operation %d failed: %s", f.op, f.what)
}

// txn applies ops atomically. A rollback is reported as a *txnFailure (not an error), except
// when an ACL refused an operation. It returns the last entry in the results (that of the
// final set or lock), nil when there is none.
func (s *store) txn(ctx context.Context, ops api.KVTxnOps) (*api.KVPair, *txnFailure, error) {
	var (
		ok   bool
		resp *api.TxnResponse
	)
	txOps := make(api.TxnOps, len(ops))
	for i, op := range ops {
		txOps[i] = &api.TxnOp{KV: op}
	}
	err := s.call(ctx, true, s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
		var err error
		ok, resp, _, err = c.Txn().Txn(txOps, readOpts(ctx))
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		f := &txnFailure{op: -1, what: "rolled back"}
		if len(resp.Errors) > 0 {
			f = &txnFailure{op: resp.Errors[0].OpIndex, what: resp.Errors[0].What}
		}
		if isAuthError(f) {
			return nil, nil, kvstore.Mark(kvstore.ErrAuthFailed, f)
		}
		return nil, f, nil
	}
	var last *api.KVPair
	for _, r := range resp.Results {
		if r != nil && r.KV != nil {
			last = r.KV
		}
	}
	return last, nil, nil
}
