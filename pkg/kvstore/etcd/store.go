package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kvop/kvop/pkg/kvstore"
)

func init() { kvstore.Register(kvstore.Etcd, Open) }

// Store is a kvstore.Store on the etcd v3 API. Create it with kvstore.New (or Open).
type Store struct {
	cli     *clientv3.Client
	timeout time.Duration // per-request bound (Config.ConnectionTimeout)

	// ctx is cancelled by Close; every background goroutine (watches, keep-alives, lock
	// monitors) runs under it and is counted in wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closed   atomic.Bool // set under mu, so goroutine never adds to wg after Close waited
	mu       sync.Mutex
	kept     map[clientv3.LeaseID]*keptLease // leases this store keeps alive (see leases.go)
	shared   map[int64]*keptLease            // by TTL seconds: the lease new KeepAlive keys go on
	sessions map[*session]struct{}           // lock leases, revoked by Close
}

var _ kvstore.Store = (*Store)(nil)

// Open connects to the etcd servers at addrs ("host:port"; http, or https when cfg.TLS is set)
// and checks within cfg.ConnectionTimeout that one of them answers, so a wrong address fails
// here with ErrNotReachable and a wrong password with ErrAuthFailed, not at the first call.
func Open(ctx context.Context, addrs []string, cfg *kvstore.Config) (kvstore.Store, error) {
	s, err := open(ctx, addrs, cfg)
	if err != nil {
		return nil, kvstore.Wrap(kvstore.Etcd, "open", "", err)
	}
	return s, nil
}

func open(ctx context.Context, addrs []string, cfg *kvstore.Config) (*Store, error) {
	c := kvstore.Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.ConnectionTimeout <= 0 {
		c.ConnectionTimeout = kvstore.DefaultConnectionTimeout
	}
	if len(addrs) == 0 {
		return nil, errors.New("no address given")
	}
	eps := endpoints(addrs, c.TLS != nil)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.ConnectionTimeout)
	defer cancel()
	if c.TLS != nil {
		if err := tlsCheck(ctx, eps, c.TLS); err != nil {
			return nil, err
		}
	}

	// clientv3.New does not dial (gRPC connects lazily); with a user it authenticates, bounded
	// by DialTimeout. Its logger is silenced: errors reach the caller through our return values,
	// and the client's retry warnings would only flood the caller's stderr.
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: c.ConnectionTimeout,
		// Pings find a dead connection (a server gone without a TCP reset) so that watches
		// reconnect; etcd refuses pings more often than every 5s.
		DialKeepAliveTime:    30 * time.Second,
		DialKeepAliveTimeout: c.ConnectionTimeout,
		TLS:                  c.TLS,
		Username:             c.Username,
		Password:             c.Password,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, openError(parent, ctx, eps, c.ConnectionTimeout, err)
	}
	if err := probe(ctx, cli, eps); err != nil {
		cli.Close()
		return nil, openError(parent, ctx, eps, c.ConnectionTimeout, err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	return &Store{
		cli:      cli,
		timeout:  c.ConnectionTimeout,
		ctx:      sctx,
		cancel:   scancel,
		kept:     map[clientv3.LeaseID]*keptLease{},
		shared:   map[int64]*keptLease{},
		sessions: map[*session]struct{}{},
	}, nil
}

// endpoints turns "host:port" into the URLs the client wants; an address that already has a
// scheme is kept as it is.
func endpoints(addrs []string, secure bool) []string {
	scheme := "http://"
	if secure {
		scheme = "https://"
	}
	eps := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if strings.Contains(a, "://") {
			eps = append(eps, a)
		} else {
			eps = append(eps, scheme+a)
		}
	}
	return eps
}

// probe asks every endpoint for its status at once and succeeds when one answers. Status needs
// a valid user (when auth is on) but no permission on any key, so it checks the credentials
// without assuming what the user may read.
func probe(ctx context.Context, cli *clientv3.Client, eps []string) error {
	errs := make(chan error, len(eps))
	for _, ep := range eps {
		go func() {
			_, err := cli.Status(ctx, ep)
			errs <- err
		}()
	}
	var first error
	for range eps {
		err := <-errs
		if err == nil {
			return nil
		}
		// An answer that refuses us says more than a silent endpoint.
		if first == nil || isAuthError(err) {
			first = err
		}
	}
	return first
}

// openError classifies a failed Open: parent is the caller's context, ctx the one bounded by
// the connection timeout.
func openError(parent, ctx context.Context, eps []string, timeout time.Duration, err error) error {
	if isAuthError(err) {
		return kvstore.Mark(kvstore.ErrAuthFailed, err)
	}
	if parent.Err() != nil {
		return kvstore.Mark(parent.Err(), err)
	}
	if ctx.Err() != nil || isUnreachable(err) {
		return kvstore.Mark(kvstore.ErrNotReachable,
			fmt.Errorf("no answer from %s within %s: %w", strings.Join(eps, ", "), timeout, err))
	}
	return err
}

// Close ends every watch, keep-alive and lock of the store (revoking the leases of held locks
// so that waiters elsewhere take over at once; with no server, that waits ConnectionTimeout)
// and closes the client. KeepAlive keys are not deleted: they expire within their TTL, as when
// the process dies.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return nil
	}
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, ss := range sessions {
		wg.Go(func() { _ = ss.release(context.Background()) })
	}
	wg.Wait()
	s.cancel()
	s.wg.Wait()
	if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return kvstore.Wrap(kvstore.Etcd, "close", "", err)
	}
	return nil
}

// goroutine runs f in the background under the store's WaitGroup, unless the store is closed.
func (s *Store) goroutine(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	s.wg.Go(f)
	return true
}

// opCtx bounds one request by the connection timeout: the client waits for a connection
// forever otherwise.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// untilClosed returns a context that ends with ctx or with the store, whichever comes first.
func (s *Store) untilClosed(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// normalize checks the store is open and returns the normalised key.
func (s *Store) normalize(op, key string) (string, error) {
	k, err := kvstore.NormalizeKey(key)
	if err != nil {
		return "", kvstore.Wrap(kvstore.Etcd, op, key, err)
	}
	if s.closed.Load() {
		return "", kvstore.Wrap(kvstore.Etcd, op, k, kvstore.ErrClosed)
	}
	return k, nil
}
