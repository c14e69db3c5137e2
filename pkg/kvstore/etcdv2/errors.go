package etcdv2

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"

	client "go.etcd.io/etcd/client/v2"

	"github.com/kvop/kvop/pkg/kvstore"
)

// etcdCode returns the v2 error code of err (errorCode in the server's JSON answer), or 0.
func etcdCode(err error) int {
	var e client.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// etcdIndex returns the etcd index a v2 error answer carries (the store's index when it
// answered), or 0.
func etcdIndex(err error) uint64 {
	var e client.Error
	if errors.As(err, &e) {
		return e.Index
	}
	return 0
}

// fail wraps an error of the client with the operation and key, translated to the kvstore
// sentinels. The client's errors say little on their own: a v2 error answer has a code, and
// anything else (a refused connection, a header timeout, a member without leader, all of them
// as a ClusterError that does not unwrap) means no server answered.
func (s *Store) fail(ctx context.Context, op, key string, err error) error {
	if err == nil {
		return nil
	}
	switch code := etcdCode(err); {
	case code == client.ErrorCodeKeyNotFound:
		err = kvstore.Mark(kvstore.ErrKeyNotFound, err)
	case code == client.ErrorCodeTestFailed:
		err = kvstore.Mark(kvstore.ErrKeyModified, err)
	case code == client.ErrorCodeNodeExist:
		err = kvstore.Mark(kvstore.ErrKeyExists, err)
	case code == client.ErrorCodeUnauthorized:
		err = kvstore.Mark(kvstore.ErrAuthFailed, err)
	case code != 0:
		// Another answer of the server (e.g. 102 "not a file" for a node kvop did not write).
	case s.closed.Load():
		err = kvstore.Mark(kvstore.ErrClosed, err)
	case ctx.Err() != nil:
		err = kvstore.Mark(ctx.Err(), err)
	case isTLSRefusal(err):
		err = kvstore.Mark(kvstore.ErrAuthFailed, err)
	default:
		err = kvstore.Mark(kvstore.ErrNotReachable, err)
	}
	return kvstore.Wrap(kvstore.EtcdV2, op, key, err)
}

// causes returns err and, for a ClusterError (which has no Unwrap), the error of each endpoint.
func causes(err error) []error {
	var ce *client.ClusterError
	if errors.As(err, &ce) {
		return append([]error{err}, ce.Errors...)
	}
	return []error{err}
}

// isTLSRefusal reports whether a TLS handshake failed on identity: a server certificate we do
// not trust, or a server alert refusing ours. With TLS 1.3 the server's alert arrives after the
// handshake, at the first read, and net/http reports it only as text ("readLoopPeekFailLocked:
// remote error: tls: bad certificate"), hence the match on the text of crypto/tls's alerts.
func isTLSRefusal(err error) bool {
	for _, e := range causes(err) {
		var (
			verify *tls.CertificateVerificationError
			alert  tls.AlertError
		)
		if errors.As(e, &verify) || errors.As(e, &alert) || strings.Contains(e.Error(), "remote error: tls: ") {
			return true
		}
	}
	return false
}

// is reports whether err carries the v2 error code.
func is(err error, code int) bool { return etcdCode(err) == code }
