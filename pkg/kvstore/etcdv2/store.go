package etcdv2

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	client "go.etcd.io/etcd/client/v2"

	"github.com/kvop/kvop/pkg/kvstore"
)

func init() { kvstore.Register(kvstore.EtcdV2, Open) }

// Store is a kvstore.Store on the etcd v2 API. Create it with kvstore.New (or Open).
type Store struct {
	kapi    client.KeysAPI
	tr      *http.Transport
	timeout time.Duration // per-request bound (Config.ConnectionTimeout)

	// ctx is cancelled by Close; every background goroutine (watches, keep-alives, lock
	// refreshers) runs under it and is counted in wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closed atomic.Bool // set under mu, so goroutine never adds to wg after Close waited
	mu     sync.Mutex
	kept   map[string]*keepAlive // KeepAlive keys of this store by user key
	held   map[*hold]struct{}    // held locks, released by Close
}

var _ kvstore.Store = (*Store)(nil)

// Open connects to the etcd servers at addrs ("host:port"; http, or https when cfg.TLS is set)
// and checks within cfg.ConnectionTimeout that one of them answers the v2 keys API, so a wrong
// address fails here with ErrNotReachable and a wrong password with ErrAuthFailed.
func Open(ctx context.Context, addrs []string, cfg *kvstore.Config) (kvstore.Store, error) {
	s, err := open(ctx, addrs, cfg)
	if err != nil {
		return nil, kvstore.Wrap(kvstore.EtcdV2, "open", "", err)
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
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment, // as the client's default transport
		DialContext:         (&net.Dialer{Timeout: c.ConnectionTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     c.TLS.Clone(),
		TLSHandshakeTimeout: c.ConnectionTimeout,
		// Every Watch, WatchTree and lock is a long poll holding a connection of its own;
		// keep enough idle ones that each request does not dial anew.
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	cli, err := client.New(client.Config{
		Endpoints: eps,
		Transport: tr,
		Username:  c.Username,
		Password:  c.Password,
		// Bounds each request's wait for response headers; long polls (watches) are exempt.
		HeaderTimeoutPerRequest: c.ConnectionTimeout,
	})
	if err != nil {
		return nil, err
	}
	sctx, scancel := context.WithCancel(context.Background())
	s := &Store{
		kapi:    client.NewKeysAPI(cli),
		tr:      tr,
		timeout: c.ConnectionTimeout,
		ctx:     sctx,
		cancel:  scancel,
		kept:    map[string]*keepAlive{},
		held:    map[*hold]struct{}{},
	}
	if err := s.probe(ctx, eps); err != nil {
		scancel()
		tr.CloseIdleConnections()
		return nil, err
	}
	return s, nil
}

// probe reads a node below kvop's root that never exists (the value node of the empty key): it
// needs a reachable member with a leader and, when v2 auth is on, valid credentials, and it
// writes nothing. Below the root rather than the root itself, so that a user whose role grants
// just "/kvop/*" passes.
func (s *Store) probe(ctx context.Context, eps []string) error {
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	_, err := s.kapi.Get(octx, root+"/"+marker, &client.GetOptions{Quorum: true})
	if err == nil || is(err, client.ErrorCodeKeyNotFound) {
		return nil
	}
	err = s.fail(ctx, "open", "", err)
	if errors.Is(err, kvstore.ErrNotReachable) {
		err = fmt.Errorf("no answer from %s within %s: %w", strings.Join(eps, ", "), s.timeout, err)
	}
	return err
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

// Close ends every watch and keep-alive of the store and releases its locks (deleting their
// keys, so that waiters elsewhere take over at once). KeepAlive keys are not deleted: they
// expire within their TTL, as when the process dies.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return nil
	}
	held := make([]*hold, 0, len(s.held))
	for h := range s.held {
		held = append(held, h)
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, h := range held {
		wg.Go(func() { _ = h.release(context.Background()) })
	}
	wg.Wait()
	s.cancel()
	s.wg.Wait()
	s.tr.CloseIdleConnections()
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

// opCtx bounds one request by the connection timeout.
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
	if err == nil {
		err = checkKey(k)
	}
	if err != nil {
		return "", kvstore.Wrap(kvstore.EtcdV2, op, key, err)
	}
	if s.closed.Load() {
		return "", kvstore.Wrap(kvstore.EtcdV2, op, k, kvstore.ErrClosed)
	}
	return k, nil
}

// backoff doubles d up to a second: how long to wait before retrying a server that failed.
func backoff(d time.Duration) time.Duration {
	if d <= 0 {
		return 50 * time.Millisecond
	}
	return min(2*d, time.Second)
}
