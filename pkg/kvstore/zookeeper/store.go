package zookeeper

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kvop/kvop/pkg/kvstore"
)

func init() { kvstore.Register(kvstore.ZooKeeper, Open) }

// Store is a kvstore.Store on one ZooKeeper session. It is safe for concurrent use.
type Store struct {
	cfg     kvstore.Config
	conn    *zk.Conn
	timeout time.Duration // per-request bound (Config.ConnectionTimeout)

	closeOnce sync.Once
	closed    chan struct{} // closed by Close: every goroutine and pending call returns
	spawnMu   sync.Mutex    // orders spawn against Close
	wg        sync.WaitGroup

	// Session state, fed by the connection's event callback.
	stateMu sync.Mutex
	stateCh chan struct{} // closed and replaced on every session state change
	// readyAt is when requests may be sent (unix nanoseconds; 0 while there is no session):
	// resyncDelay after a reconnect, at once after the first connect (see onEvent).
	readyAt   atomic.Int64 // written under stateMu
	connected bool         // the first session was had; under stateMu

	hub   hub      // watch subscriptions, fed by the event callback
	ttls  ttlTable // client-side expiry and keep-alive of TTL keys
	locks lockSet  // held locks, to report their loss

	dialMu      sync.Mutex
	lastDialErr error    // why the last connection attempt failed, for Open's error
	live        net.Conn // the connection in use, so that Abandon can drop it
	abandoned   bool     // Abandon was called: dial no more
}

var _ kvstore.Store = (*Store)(nil)

// resyncDelay is how long requests wait after a reconnect before they are sent (awaitReady).
//
// go-zookeeper v1.0.4 (the newest release) re-registers its watches right after it
// reconnects, reading Conn.lastZxid without synchronisation while its receive loop writes it
// from every answer: an answer to one of our requests sent at once would race with it (-race
// reports a data race inside the library). The re-registration starts at the moment the
// session is re-established, before any answer can arrive; 100 ms later it has long read the
// field. A request issued while disconnected would otherwise wait in the library's send queue
// and be sent at that very moment, so requests wait here, not there.
const resyncDelay = 100 * time.Millisecond

// errTimeout is a request that got no answer within Config.ConnectionTimeout.
var errTimeout = errors.New("no answer from ZooKeeper within the connection timeout")

// Open connects to the ZooKeeper ensemble at addrs ("host:port") and waits until the session is
// established. It is registered as kvstore.ZooKeeper; use kvstore.New.
func Open(ctx context.Context, addrs []string, cfg *kvstore.Config) (kvstore.Store, error) {
	s := &Store{closed: make(chan struct{}), stateCh: make(chan struct{})}
	if cfg != nil {
		s.cfg = *cfg
	}
	if s.cfg.ConnectionTimeout <= 0 {
		s.cfg.ConnectionTimeout = kvstore.DefaultConnectionTimeout
	}
	if s.cfg.SessionTimeout <= 0 {
		s.cfg.SessionTimeout = kvstore.DefaultSessionTimeout
	}
	s.timeout = s.cfg.ConnectionTimeout
	s.hub.init()
	s.ttls.init()
	s.locks.init()
	if len(addrs) == 0 {
		return nil, kvstore.Wrap(kvstore.ZooKeeper, "open", "", errors.New("no address given"))
	}

	conn, _, err := zk.Connect(addrs, s.cfg.SessionTimeout,
		zk.WithDialer(s.dial),
		zk.WithLogger(quietLogger{}),
		zk.WithLogInfo(false),
		zk.WithEventCallback(s.onEvent))
	if err != nil {
		return nil, kvstore.Wrap(kvstore.ZooKeeper, "open", "", kvstore.Mark(kvstore.ErrNotReachable, err))
	}
	s.conn = conn
	if err := s.awaitSession(ctx); err != nil {
		conn.Close()
		return nil, kvstore.Wrap(kvstore.ZooKeeper, "open", "", err)
	}
	if s.cfg.Username != "" {
		auth := []byte(s.cfg.Username + ":" + s.cfg.Password)
		if err := s.do(ctx, func() error { return conn.AddAuth("digest", auth) }); err != nil {
			conn.Close()
			return nil, kvstore.Wrap(kvstore.ZooKeeper, "open", "", kvstore.Mark(kvstore.ErrAuthFailed, err))
		}
	}
	s.spawn(s.monitorSession)
	return s, nil
}

// dial opens one connection to a server, over TLS when configured; ZooKeeper 3.5+ serves TLS
// on its secureClientPort. It remembers the failure so that Open can say why it gave up.
func (s *Store) dial(network, addr string, _ time.Duration) (net.Conn, error) {
	s.dialMu.Lock()
	abandoned := s.abandoned
	s.dialMu.Unlock()
	if abandoned {
		return nil, errAbandoned
	}
	d := &net.Dialer{Timeout: s.cfg.ConnectionTimeout}
	var conn net.Conn
	var err error
	if s.cfg.TLS != nil {
		tc := s.cfg.TLS.Clone()
		if tc.ServerName == "" {
			if host, _, splitErr := net.SplitHostPort(addr); splitErr == nil {
				tc.ServerName = host
			}
		}
		var tlsConn *tls.Conn
		tlsConn, err = tls.DialWithDialer(d, network, addr, tc)
		if err == nil {
			conn = &watchedConn{Conn: tlsConn, s: s}
		}
	} else {
		conn, err = d.Dial(network, addr)
	}
	s.dialMu.Lock()
	s.lastDialErr = err
	if err == nil {
		s.live = conn
	}
	s.dialMu.Unlock()
	return conn, err
}

// errAbandoned: the store was abandoned and opens no connection any more.
var errAbandoned = errors.New("store abandoned")

// Abandon releases every held lock, then lets go of the connection without ending the session:
// the server expires the session after the session timeout, so this store's TTL keys outlive it
// by up to that long — as if the process had died — and a successor that writes them meanwhile
// (taking the ephemeral nodes over into its own session) leaves no gap. Close, by contrast, ends
// the session and deletes them at once. The store is closed afterwards.
func (s *Store) Abandon() error {
	for _, l := range s.locks.lockers() {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		_ = l.Unlock(ctx)
		cancel()
	}
	s.dialMu.Lock()
	s.abandoned = true
	live := s.live
	s.dialMu.Unlock()
	if live != nil {
		// The client's close-session request can no longer reach the server: it is queued on a
		// connection that is gone, and every reconnect is refused.
		_ = live.Close()
	}
	return s.Close()
}

// watchedConn records a TLS alert seen after the handshake: with TLS 1.3 a server that refuses
// the client certificate says so only on the first read.
type watchedConn struct {
	net.Conn
	s *Store
}

func (c *watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && isTLSRefusal(err) {
		c.s.dialMu.Lock()
		c.s.lastDialErr = err
		c.s.dialMu.Unlock()
	}
	return n, err
}

// isTLSRefusal reports whether err is one side refusing the other's certificate. A TLS alert
// from the peer has no exported type, hence the look at the text.
func isTLSRefusal(err error) bool {
	var verify *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var alert tls.AlertError
	return errors.As(err, &verify) || errors.As(err, &unknownCA) || errors.As(err, &hostname) ||
		errors.As(err, &alert) || strings.Contains(err.Error(), "remote error: tls:")
}

// awaitSession waits until the connection has a session, within ConnectionTimeout.
func (s *Store) awaitSession(ctx context.Context) error {
	timer := time.NewTimer(s.cfg.ConnectionTimeout)
	defer timer.Stop()
	for {
		changed := s.stateChanged()
		if s.conn.State() == zk.StateHasSession {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			s.dialMu.Lock()
			cause := s.lastDialErr
			s.dialMu.Unlock()
			if cause != nil && isTLSRefusal(cause) {
				return kvstore.Mark(kvstore.ErrAuthFailed, fmt.Errorf("TLS: %w", cause))
			}
			if cause == nil {
				cause = fmt.Errorf("no session within %s", s.cfg.ConnectionTimeout)
			}
			return kvstore.Mark(kvstore.ErrNotReachable, cause)
		}
	}
}

// stateChanged returns a channel that is closed at the next session state change.
func (s *Store) stateChanged() <-chan struct{} {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.stateCh
}

// onEvent receives every event of the connection, on its receive goroutine: it must not block.
func (s *Store) onEvent(ev zk.Event) {
	switch ev.Type {
	case zk.EventSession:
		// readyAt changes before stateCh is closed: a waiter woken by the change must see it.
		s.stateMu.Lock()
		reconnect := false
		switch {
		case ev.State != zk.StateHasSession:
			s.readyAt.Store(0)
		case s.connected:
			reconnect = true
			s.readyAt.Store(time.Now().Add(resyncDelay).UnixNano())
		default:
			s.connected = true
			s.readyAt.Store(time.Now().UnixNano())
		}
		close(s.stateCh)
		s.stateCh = make(chan struct{})
		s.stateMu.Unlock()
		if reconnect {
			// After a reconnect, requests wait a moment (see awaitReady), and then watchers
			// re-read: a new session has lost every watch, and even a resumed one is cheaper
			// to check than to trust.
			time.AfterFunc(resyncDelay, s.hub.resyncAll)
		}
	case zk.EventNotWatching:
		s.hub.resyncAll()
	default:
		s.hub.dispatch(ev)
	}
}

// Close ends the session, which removes every ephemeral node of this store (TTL keys, lock
// entries), closes the channels of watches and lost locks, and stops every goroutine.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.spawnMu.Lock()
		close(s.closed)
		s.spawnMu.Unlock()
		s.locks.loseAll()
		s.ttls.stopAll()
		s.conn.Close()
		s.wg.Wait()
	})
	return nil
}

// spawn runs fn in a goroutine that Close waits for; it returns false once the store is closed.
func (s *Store) spawn(fn func()) bool {
	s.spawnMu.Lock()
	defer s.spawnMu.Unlock()
	if s.isClosed() {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// call runs one ZooKeeper request, bounded by ctx, the per-request timeout and Close. The
// client library has no contexts: a request waits for its answer or the loss of the
// connection, so a request we stop waiting for finishes in the background, and its result
// travels only through the channel (nothing is shared with the abandoned goroutine).
func call[T any](s *Store, ctx context.Context, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	var zero T
	if s.isClosed() {
		return zero, kvstore.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	if err := s.awaitReady(ctx, timer.C); err != nil {
		return zero, err
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && s.isClosed() {
			return zero, kvstore.ErrClosed
		}
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-timer.C:
		return zero, errTimeout
	case <-s.closed:
		return zero, kvstore.ErrClosed
	}
}

// awaitReady waits until requests may be sent: the connection has a session, and resyncDelay
// has passed since a reconnect. It ends with errTimeout when timeout fires first.
func (s *Store) awaitReady(ctx context.Context, timeout <-chan time.Time) error {
	// Every request comes here: while connected, answer without taking stateMu.
	if at := s.readyAt.Load(); at != 0 && time.Now().UnixNano() >= at {
		return nil
	}
	for {
		changed := s.stateChanged()
		var wait <-chan time.Time
		if at := s.readyAt.Load(); at != 0 {
			d := time.Until(time.Unix(0, at))
			if d <= 0 {
				return nil
			}
			wait = time.After(d)
		}
		select {
		case <-wait:
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return errTimeout
		case <-s.closed:
			return kvstore.ErrClosed
		}
	}
}

// do is call for requests that return only an error.
func (s *Store) do(ctx context.Context, fn func() error) error {
	_, err := call(s, ctx, func() (struct{}, error) { return struct{}{}, fn() })
	return err
}

// fail wraps err with context, translating the client library's errors into kvstore's.
func (s *Store) fail(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return kvstore.Wrap(kvstore.ZooKeeper, op, key, s.translate(err))
}

func (s *Store) translate(err error) error {
	switch {
	case errors.Is(err, kvstore.ErrClosed), errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, errTimeout), errors.Is(err, zk.ErrConnectionClosed),
		errors.Is(err, zk.ErrNoServer), errors.Is(err, zk.ErrSessionExpired),
		errors.Is(err, zk.ErrSessionMoved):
		return kvstore.Mark(kvstore.ErrNotReachable, err)
	case errors.Is(err, zk.ErrClosing):
		if s.isClosed() {
			return kvstore.ErrClosed
		}
		return kvstore.Mark(kvstore.ErrNotReachable, err)
	case errors.Is(err, zk.ErrNoAuth), errors.Is(err, zk.ErrAuthFailed), errors.Is(err, zk.ErrInvalidACL):
		return kvstore.Mark(kvstore.ErrAuthFailed, err)
	case errors.Is(err, zk.ErrInvalidPath):
		return kvstore.Mark(kvstore.ErrInvalidKey, fmt.Errorf("ZooKeeper cannot store this name: %w", err))
	case errors.Is(err, zk.ErrNoChildrenForEphemerals):
		return kvstore.Mark(kvstore.ErrInvalidKey, fmt.Errorf(
			"on ZooKeeper a TTL key or held lock cannot have keys below it: %w", err))
	}
	return err
}

// normalize checks a key and returns it with its znode path.
func (s *Store) normalize(op, key string) (string, string, error) {
	k, err := kvstore.NormalizeKey(key)
	if err != nil {
		return "", "", kvstore.Wrap(kvstore.ZooKeeper, op, key, err)
	}
	if s.isClosed() {
		return "", "", kvstore.Wrap(kvstore.ZooKeeper, op, k, kvstore.ErrClosed)
	}
	return k, znodePath(k), nil
}

// quietLogger drops the client library's log lines: connection trouble surfaces as errors of
// the operations, and the library logs every reconnect attempt.
type quietLogger struct{}

func (quietLogger) Printf(string, ...interface{}) {}
