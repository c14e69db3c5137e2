package consul

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kvop/kvop/pkg/kvstore"
)

func init() { kvstore.Register(kvstore.Consul, Open) }

// store is the Consul implementation of kvstore.Store.
type store struct {
	cfg       *kvstore.Config
	addrs     []string
	clients   []*api.Client // one per address, in the caller's order
	transport *http.Transport
	current   atomic.Int32 // index of the client that answered last: tried first next time

	// floor is the server's session_ttl_min once a session create told us (0: not yet known).
	floor atomic.Int64

	// ctx is cancelled by Close: it ends watches, keep-alives and lock holders.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// keyMu serialises writes per key (striped), so that the session bookkeeping of a TTL key
	// always matches what the last write on that key did.
	keyMu [256]sync.Mutex

	// keptMu serialises the creation of shared KeepAlive sessions (it is taken before mu).
	keptMu sync.Mutex

	mu        sync.Mutex
	closed    bool
	ttlKeys   map[string]*ttlKey
	kept      map[time.Duration]*keptSession // shared sessions of KeepAlive keys, by TTL asked
	lastSweep time.Time
	holdings  map[*holding]struct{}
	keepers   map[string]*keeper // catalog services whose checks this store keeps passing, by ID
}

// Open connects to the Consul agents at addrs ("host:port"; https when cfg.TLS is set) and
// checks that one of them answers within cfg.ConnectionTimeout. kvstore.New calls it.
func Open(ctx context.Context, addrs []string, cfg *kvstore.Config) (kvstore.Store, error) {
	if cfg == nil {
		cfg = &kvstore.Config{}
	}
	c := *cfg
	if c.ConnectionTimeout <= 0 {
		c.ConnectionTimeout = kvstore.DefaultConnectionTimeout
	}
	if len(addrs) == 0 {
		return nil, wrap("open", "", fmt.Errorf("no address given"))
	}
	s := &store{
		cfg:      &c,
		addrs:    append([]string(nil), addrs...),
		ttlKeys:  map[string]*ttlKey{},
		kept:     map[time.Duration]*keptSession{},
		holdings: map[*holding]struct{}{},
	}
	s.transport = newTransport(&c)
	scheme := "http"
	if c.TLS != nil {
		scheme = "https"
	}
	for _, addr := range addrs {
		client, err := api.NewClient(&api.Config{
			Address:    addr,
			Scheme:     scheme,
			Token:      c.Token,
			Transport:  s.transport,
			HttpClient: &http.Client{Transport: s.transport},
		})
		if err != nil {
			return nil, wrap("open", "", fmt.Errorf("address %q: %w", addr, err))
		}
		s.clients = append(s.clients, client)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.ping(ctx); err != nil {
		s.cancel()
		s.transport.CloseIdleConnections()
		return nil, wrap("open", "", err)
	}
	return s, nil
}

// newTransport returns the store's own HTTP transport, so that Close can drop its connections
// and a custom TLS configuration never leaks into other clients.
func newTransport(cfg *kvstore.Config) *http.Transport {
	var tlsConfig *tls.Config
	if cfg.TLS != nil {
		tlsConfig = cfg.TLS.Clone()
	}
	dialer := &net.Dialer{Timeout: cfg.ConnectionTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: cfg.ConnectionTimeout,
		// Every watch and lock holder keeps a blocking query open: allow enough idle
		// connections that they are reused instead of redialled.
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
}

// ping checks that a server answers (status/leader needs no ACL), and, when a token is set,
// that the ACL system knows it: a wrong token fails at Open rather than at the first write.
func (s *store) ping(ctx context.Context) error {
	var leader string
	err := s.callRaw(ctx, false, s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
		var err error
		leader, err = c.Status().LeaderWithQueryOptions(readOpts(ctx))
		return err
	})
	if err != nil {
		return err
	}
	if leader == "" {
		return kvstore.Mark(kvstore.ErrNotReachable, fmt.Errorf("consul has no raft leader"))
	}
	if s.cfg.Token == "" {
		return nil
	}
	return s.callRaw(ctx, false, s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
		_, _, err := c.ACL().TokenReadSelf(readOpts(ctx))
		if err != nil && isACLDisabled(err) {
			return nil // ACLs off: any token is accepted
		}
		return err
	})
}

// spawn runs f in a goroutine that Close waits for; it reports false after Close.
func (s *store) spawn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close ends every watch, keep-alive and lock: held locks are released at once (their
// sessions destroyed, so their keys are deleted); TTL keys are left to expire on their own, as
// if the process had ended (within the bound in the package doc).
func (s *store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	holdings := make([]*holding, 0, len(s.holdings))
	for h := range s.holdings {
		holdings = append(holdings, h)
	}
	s.holdings = map[*holding]struct{}{}
	s.mu.Unlock()

	s.cancel()
	// Release the locks in parallel under one deadline, so that Close is quick even when the
	// servers are gone (the sessions then expire by their TTL).
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ConnectionTimeout)
	var wg sync.WaitGroup
	for _, h := range holdings {
		if !h.end() {
			continue // already lost or unlocked
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.release(ctx, h.key, h.session)
		}()
	}
	wg.Wait()
	cancel()
	s.wg.Wait()
	s.transport.CloseIdleConnections()
	return nil
}

// keyLock returns the stripe lock of a normalised key.
func (s *store) keyLock(key string) *sync.Mutex {
	var h uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return &s.keyMu[h%uint32(len(s.keyMu))]
}

// readOpts and writeOpts carry ctx into a request.
func readOpts(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{}).WithContext(ctx)
}

func writeOpts(ctx context.Context) *api.WriteOptions {
	return (&api.WriteOptions{}).WithContext(ctx)
}
