package consul

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kvop/kvop/pkg/kvstore"
)

// wrap adds the backend, operation and key to err.
func wrap(op, key string, err error) error { return kvstore.Wrap(kvstore.Consul, op, key, err) }

// call runs one request (fn) against the servers, with a deadline of timeout per attempt, and
// translates its error. It fails with ErrClosed after Close, and ends early when Close runs.
func (s *store) call(ctx context.Context, write bool, timeout time.Duration, fn func(ctx context.Context, c *api.Client) error) error {
	if s.ctx.Err() != nil {
		return kvstore.ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	err := s.callRaw(ctx, write, timeout, fn)
	if err != nil && s.ctx.Err() != nil {
		return kvstore.ErrClosed
	}
	return err
}

// callRaw is call without the Close checks (Close itself uses it to release locks).
//
// It starts with the server that answered last and moves on to the next address when a server
// cannot be reached. A write is only retried elsewhere when its connection was never made: a
// write that may have been applied must not be applied twice (a repeated CAS would report a
// false conflict).
func (s *store) callRaw(ctx context.Context, write bool, timeout time.Duration, fn func(ctx context.Context, c *api.Client) error) error {
	n := len(s.clients)
	start := int(s.current.Load())
	var err error
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		rctx, cancel := context.WithTimeout(ctx, timeout)
		err = fn(rctx, s.clients[idx])
		cancel()
		if err == nil {
			if i > 0 {
				s.current.Store(int32(idx))
			}
			return nil
		}
		if ctx.Err() != nil {
			// The caller gave up (or Close ran): that is the error, not the server.
			return ctx.Err()
		}
		if !isTransportError(err) || (write && !neverSent(err)) {
			break
		}
		if n > 1 {
			err = fmt.Errorf("%s: %w", s.addrs[idx], err)
		}
	}
	return translate(err)
}

// translate maps a consul/api error to the kvstore sentinels, keeping its text.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if isAuthError(err) {
		return kvstore.Mark(kvstore.ErrAuthFailed, err)
	}
	if isTransportError(err) {
		return kvstore.Mark(kvstore.ErrNotReachable, err)
	}
	var se api.StatusError
	if errors.As(err, &se) && se.Code == 400 && strings.Contains(se.Body, "HTTP request to an HTTPS server") {
		return fmt.Errorf("%w (the agent serves HTTPS: set Config.TLS)", err)
	}
	return err
}

// isAuthError: the server refused the token (403: "ACL not found", "Permission denied"), or
// one side refused the other's TLS certificate. consul/api reports some status codes only as
// text, hence the string checks.
func isAuthError(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) && se.Code == 403 {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"ACL not found", "Permission denied", "response code: 403", "token not found"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	var (
		unknownCA   x509.UnknownAuthorityError
		hostname    x509.HostnameError
		invalid     x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
		alert       tls.AlertError
		recordAlert *net.OpError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid),
		errors.As(err, &verifyErr), errors.As(err, &alert):
		return true
	case errors.As(err, &recordAlert) && strings.Contains(recordAlert.Error(), "remote error: tls:"):
		// The server rejected our certificate (or our lack of one) during the handshake.
		return true
	}
	return false
}

func isACLDisabled(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == 401 && strings.Contains(se.Body, "ACL support disabled")
}

// isTransportError: no HTTP answer came back (refused, reset, timed out, TLS failure).
func isTransportError(err error) bool {
	var (
		ue *url.Error
		ne net.Error
	)
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded)
}

// neverSent: the connection could not be made, so the server cannot have seen the request.
func neverSent(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// sessionGone reports an error that says the session no longer exists (expired or destroyed).
func sessionGone(err error) bool {
	return err != nil && strings.Contains(err.Error(), "invalid session")
}
