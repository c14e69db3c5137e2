package etcd

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvop/kvop/pkg/kvstore"
)

// fail wraps an error of the client with the operation and key, translated to the kvstore
// sentinels: the caller's own cancellation stays as it is, a closed store is ErrClosed, a
// refused user ErrAuthFailed, and a request that timed out or found no server ErrNotReachable.
func (s *Store) fail(ctx context.Context, op, key string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case s.closed.Load():
		err = kvstore.Mark(kvstore.ErrClosed, err)
	case ctx.Err() != nil:
		err = kvstore.Mark(ctx.Err(), err)
	case isAuthError(err):
		err = kvstore.Mark(kvstore.ErrAuthFailed, err)
	case isUnreachable(err):
		err = kvstore.Mark(kvstore.ErrNotReachable, err)
	}
	return kvstore.Wrap(kvstore.Etcd, op, key, err)
}

// isAuthError reports whether the server refused who we are.
func isAuthError(err error) bool {
	return isAny(err, rpctypes.ErrAuthFailed, rpctypes.ErrPermissionDenied, rpctypes.ErrUserEmpty,
		rpctypes.ErrInvalidAuthToken, rpctypes.ErrUserNotFound) ||
		status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.PermissionDenied
}

// isUnreachable reports whether a request failed for want of a server that answers: our
// per-request timeout, a connection gRPC could not make, or a cluster without a leader.
func isUnreachable(err error) bool {
	return isAny(err, context.DeadlineExceeded, rpctypes.ErrNoLeader, rpctypes.ErrTimeout,
		rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrStopped) ||
		status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded
}

func isAny(err error, targets ...error) bool {
	return slices.ContainsFunc(targets, func(target error) bool { return errors.Is(err, target) })
}

// tlsCheck does a TLS handshake with every endpoint at once, without gRPC, because gRPC
// reports a failed handshake only as a timeout. When no endpoint accepts us, it says why: a
// certificate we do not trust or an alert refusing ours is ErrAuthFailed, anything else (no
// server, a server that does not speak TLS) ErrNotReachable.
func tlsCheck(ctx context.Context, eps []string, cfg *tls.Config) error {
	results := make(chan error, len(eps)) // buffered: late handshakes end without a reader
	for _, ep := range eps {
		go func() { results <- handshake(ctx, ep[strings.Index(ep, "://")+3:], cfg) }()
	}
	var refused, failed error
	for range eps {
		err := <-results
		switch {
		case err == nil:
			return nil
		case tlsRefused(err):
			refused = cmp.Or(refused, kvstore.Mark(kvstore.ErrAuthFailed, err))
		default:
			failed = cmp.Or(failed, kvstore.Mark(kvstore.ErrNotReachable, fmt.Errorf("TLS handshake: %w", err)))
		}
	}
	return cmp.Or(refused, failed)
}

// tlsRefused reports whether a handshake failed over identity: we do not trust the server's
// certificate, or the server sent an alert (crypto/tls reports those as a net.OpError with
// Op "remote error"), such as "certificate required" or "bad certificate".
func tlsRefused(err error) bool {
	var verify *tls.CertificateVerificationError
	var op *net.OpError
	return errors.As(err, &verify) || (errors.As(err, &op) && op.Op == "remote error")
}

func handshake(ctx context.Context, hostPort string, cfg *tls.Config) error {
	c := cfg.Clone()
	c.NextProtos = []string{"h2"} // as gRPC offers
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(hostPort)
	}
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", hostPort)
	if err != nil {
		return err
	}
	defer raw.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(deadline)
	}
	conn := tls.Client(raw, c)
	if err := conn.HandshakeContext(ctx); err != nil {
		return err
	}
	// With TLS 1.3 a server refuses the client's certificate only after the handshake: the
	// first read brings its alert, or the HTTP/2 settings of a server that accepted us.
	_, err = conn.Read(make([]byte, 1))
	return err
}
