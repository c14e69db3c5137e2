package registration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/types"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers/storepool"
	"github.com/kvop/kvop/pkg/discovery"
	"github.com/kvop/kvop/pkg/discovery/consulcatalog"
	"github.com/kvop/kvop/pkg/discovery/curator"
	"github.com/kvop/kvop/pkg/discovery/skydns"
	"github.com/kvop/kvop/pkg/kvstore"
)

// layout is how a Registration's format places its entries in the backend. The sync steps are
// the same for every format — read the service's entries of any owner, write what is missing or
// different, remove what is ours and unwanted — only the places and encodings differ. Keys are
// the layout's own (they only need to be equal for the same entry); values are compared as
// read, so encode must give exactly the bytes read returns for an unchanged entry.
type layout interface {
	codec
	// read returns the service's entries (of any owner) by key, ours marked.
	read(ctx context.Context, service, owner string) (map[string]storedEntry, error)
	// write stores w at key and keeps it alive (until the store closes) with ttl.
	write(ctx context.Context, key string, w wantedEntry, ttl time.Duration) error
	// removeOwned deletes the entry at key if owner still owns it; it reports whether it did.
	removeOwned(ctx context.Context, key, owner string) (bool, error)
}

// codec names and encodes entries: all that computing the wanted entries needs.
type codec interface {
	key(e discovery.Entry) (string, error)
	encode(w wantedEntry) (string, error)
}

// formatOf is the Registration's format (kv when unset: objects from before the field).
func formatOf(reg *kvopv1.Registration) kvopv1.Format {
	if reg.Spec.Format == "" {
		return kvopv1.FormatKV
	}
	return reg.Spec.Format
}

// formatBackends: the backend each native format needs (kv runs on all).
var formatBackends = map[kvopv1.Format]kvstore.Backend{
	kvopv1.FormatSkyDNS:        kvstore.Etcd,
	kvopv1.FormatConsulCatalog: kvstore.Consul,
	kvopv1.FormatCurator:       kvstore.ZooKeeper,
}

// formatSupported returns nil when backend can serve the Registration's format, and the reason
// why not otherwise.
func formatSupported(reg *kvopv1.Registration, backend kvopv1.Backend) *blocked {
	f := formatOf(reg)
	want, native := formatBackends[f]
	if !native || kvstore.Backend(backend) == want {
		return nil
	}
	return &blocked{kvopv1.ReasonFormatNotSupported, fmt.Sprintf(
		"format %s needs a %s KVEndpoint; KVEndpoint %q is %s", f, want, reg.Spec.EndpointRef.Name, backend)}
}

// dnsLabel is what a skydns service name must be: CoreDNS finds the records by the query name.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// skydnsCache keeps one skydns.Store (and so one set of kept-alive leases) per open connection
// of each KVEndpoint: the layouts of every reconcile share it.
type skydnsCache struct {
	mu     sync.Mutex
	stores map[types.NamespacedName]skydnsCached
}

type skydnsCached struct {
	conn *storepool.Store
	st   *skydns.Store
}

// get returns the skydns.Store of the endpoint's connection conn, making it on first use (or
// after the connection was replaced: the old one's leases end with its client).
func (c *skydnsCache) get(endpoint types.NamespacedName, conn *storepool.Store, cli *clientv3.Client) *skydns.Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stores == nil {
		c.stores = map[types.NamespacedName]skydnsCached{}
	}
	if cached, ok := c.stores[endpoint]; ok && cached.conn == conn {
		return cached.st
	}
	st := skydns.NewStore(cli, 0)
	c.stores[endpoint] = skydnsCached{conn: conn, st: st}
	return st
}

// layoutFor builds the layout of the Registration's format on the endpoint's open store.
func (r *Reconciler) layoutFor(reg *kvopv1.Registration, store *storepool.Store) (layout, error) {
	if b := formatSupported(reg, kvopv1.Backend(store.Backend)); b != nil {
		return nil, b
	}
	switch formatOf(reg) {
	case kvopv1.FormatKV:
		return newKVLayout(store), nil
	case kvopv1.FormatSkyDNS:
		return newSkyDNSLayout(reg, store, &r.skydns)
	case kvopv1.FormatCurator:
		return newCuratorLayout(reg, store)
	case kvopv1.FormatConsulCatalog:
		return newCatalogLayout(reg, store)
	}
	return nil, &blocked{kvopv1.ReasonInvalidSpec, fmt.Sprintf("unknown format %q", reg.Spec.Format)}
}

// pairStore is what a key/value layout needs of a store: kvstore.Store has it, and so has
// skydns.Store for etcd keys outside the kvstore namespace.
type pairStore interface {
	List(ctx context.Context, dir string) ([]*kvstore.KVPair, error)
	Get(ctx context.Context, key string) (*kvstore.KVPair, error)
	AtomicDelete(ctx context.Context, key string, previous *kvstore.KVPair) (bool, error)
}

// pairLayout is a format of one key/value pair per entry (kv, skydns, curator).
type pairLayout struct {
	st       pairStore
	put      func(ctx context.Context, key string, value []byte, ttl time.Duration) error
	dir      func(service string) string
	keyOf    func(e discovery.Entry) (string, error)
	encodeFn func(w wantedEntry) ([]byte, error)
	// owner returns who wrote a stored value, and false for a value that is no entry (not
	// ours to judge: never touched).
	ownerOf func(value []byte) (string, bool)
}

func (l *pairLayout) key(e discovery.Entry) (string, error) { return l.keyOf(e) }

func (l *pairLayout) encode(w wantedEntry) (string, error) {
	v, err := l.encodeFn(w)
	return string(v), err
}

func (l *pairLayout) read(ctx context.Context, service, owner string) (map[string]storedEntry, error) {
	pairs, err := l.st.List(ctx, l.dir(service))
	if errors.Is(err, kvstore.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]storedEntry{}
	for _, p := range pairs {
		if o, ok := l.ownerOf(p.Value); ok {
			out[p.Key] = storedEntry{value: string(p.Value), ours: o == owner}
		}
	}
	return out, nil
}

func (l *pairLayout) write(ctx context.Context, key string, w wantedEntry, ttl time.Duration) error {
	return l.put(ctx, key, []byte(w.value), ttl)
}

// removeOwned deletes on condition of the value read, so that an entry another writer put there
// in between survives.
func (l *pairLayout) removeOwned(ctx context.Context, key, owner string) (bool, error) {
	pair, err := l.st.Get(ctx, key)
	if errors.Is(err, kvstore.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if o, ok := l.ownerOf(pair.Value); !ok || o != owner {
		return false, nil
	}
	ok, err := l.st.AtomicDelete(ctx, key, pair)
	if errors.Is(err, kvstore.ErrKeyNotFound) || errors.Is(err, kvstore.ErrKeyModified) {
		return false, nil
	}
	return ok, err
}

// kvCodec is kvop's own format: <prefix>/services/<service>/<address>:<port>, the Entry as
// JSON, exactly as discovery.Registry writes it.
type kvCodec struct{ prefix string }

func (c kvCodec) key(e discovery.Entry) (string, error) {
	return kvstore.NormalizeKey(discovery.Key(c.prefix, e))
}

func (c kvCodec) encode(w wantedEntry) (string, error) {
	v, err := json.Marshal(w.entry)
	return string(v), err
}

// newKVLayout is kvop's own format (kvCodec) on any store.
func newKVLayout(store *storepool.Store) layout {
	c := kvCodec{store.Prefix}
	return &pairLayout{
		st: store,
		put: func(ctx context.Context, key string, value []byte, ttl time.Duration) error {
			return store.Put(ctx, key, value, &kvstore.WriteOptions{TTL: ttl, KeepAlive: true})
		},
		dir:      func(service string) string { return discovery.ServiceDir(store.Prefix, service) },
		keyOf:    c.key,
		encodeFn: func(w wantedEntry) ([]byte, error) { return json.Marshal(w.entry) },
		ownerOf: func(value []byte) (string, bool) {
			e, err := discovery.Decode(value)
			return e.Owner, err == nil
		},
	}
}

// etcdClient is what the etcd backend offers beyond kvstore.Store.
type etcdClient interface{ Client() *clientv3.Client }

// newSkyDNSLayout writes CoreDNS etcd-plugin records at /<path>/<reversed domain>/<service>/<id>:
// absolute from the etcd root, where CoreDNS reads, so not below the endpoint prefix.
func newSkyDNSLayout(reg *kvopv1.Registration, store *storepool.Store, cache *skydnsCache) (layout, error) {
	spec := reg.Spec.SkyDNS
	if spec == nil || spec.Domain == "" {
		return nil, &blocked{kvopv1.ReasonInvalidSpec, "format skydns needs spec.skydns.domain"}
	}
	if service := serviceOf(reg); !dnsLabel.MatchString(service) {
		return nil, &blocked{kvopv1.ReasonInvalidSpec, fmt.Sprintf(
			"format skydns: service %q must be a DNS label (lower case letters, digits and '-'); set spec.service", service)}
	}
	native, ok := store.Native().(etcdClient)
	if !ok {
		return nil, &blocked{kvopv1.ReasonFormatNotSupported, "the etcd store does not expose its client"}
	}
	path := spec.Path
	if path == "" {
		path = skydns.DefaultPath
	}
	ttl := uint32(30)
	if spec.TTL > 0 {
		ttl = uint32(spec.TTL)
	}
	st := cache.get(endpointKey(reg), store, native.Client())
	return &pairLayout{
		st:    st,
		put:   st.Put,
		dir:   func(service string) string { return skydns.ServiceDir(path, spec.Domain, service) },
		keyOf: func(e discovery.Entry) (string, error) { return skydns.Key(path, spec.Domain, e), nil },
		encodeFn: func(w wantedEntry) ([]byte, error) {
			return skydns.Encode(skydns.NewRecord(w.entry, ttl))
		},
		ownerOf: func(value []byte) (string, bool) {
			r, err := skydns.Decode(value)
			return r.Owner, err == nil
		},
	}, nil
}

// verbatimPutter is what the ZooKeeper backend offers beyond kvstore.Store: node data without
// kvop's header byte, which Curator clients could not parse.
type verbatimPutter interface {
	PutVerbatim(ctx context.Context, key string, value []byte, opts *kvstore.WriteOptions) error
}

// newCuratorLayout writes Curator ServiceInstances as ephemeral nodes <basePath>/<service>/<id>,
// absolute from the ZooKeeper root (where Curator clients look), not below the endpoint prefix.
func newCuratorLayout(reg *kvopv1.Registration, store *storepool.Store) (layout, error) {
	basePath := curator.DefaultBasePath
	var uriTemplate string
	if c := reg.Spec.Curator; c != nil {
		if c.BasePath != "" {
			basePath = c.BasePath
		}
		uriTemplate = c.URISpec
	}
	uri, err := curator.ParseURISpec(uriTemplate)
	if err != nil {
		return nil, &blocked{kvopv1.ReasonInvalidSpec, "spec.curator.uriSpec: " + err.Error()}
	}
	native, ok := store.Native().(verbatimPutter)
	if !ok {
		return nil, &blocked{kvopv1.ReasonFormatNotSupported, "the zookeeper store cannot write verbatim values"}
	}
	return &pairLayout{
		st: store,
		put: func(ctx context.Context, key string, value []byte, ttl time.Duration) error {
			// A TTL key on ZooKeeper is an ephemeral node of the store's session, as Curator's are.
			return native.PutVerbatim(ctx, key, value, &kvstore.WriteOptions{TTL: ttl, KeepAlive: true})
		},
		dir: func(service string) string { return curator.ServiceDir(basePath, service) },
		keyOf: func(e discovery.Entry) (string, error) {
			return kvstore.NormalizeKey(curator.Path(basePath, e))
		},
		encodeFn: func(w wantedEntry) ([]byte, error) {
			return curator.Encode(curator.NewInstance(w.entry, w.since, uri))
		},
		ownerOf: func(value []byte) (string, bool) {
			inst, err := curator.Decode(value)
			return inst.Owner(), err == nil
		},
	}, nil
}

// catalogLayout registers Consul service instances with a TTL check the store keeps passing.
type catalogLayout struct {
	catalog kvstore.Catalog
	tags    []string
	check   kvstore.CatalogCheck
	names   map[string]string // key → service name, from read (removal looks the instance up again)
}

// catalogKey keeps catalog IDs apart from the store's key/value keys in Store.Written.
func catalogKey(id string) string { return "consul-catalog:" + id }

func newCatalogLayout(reg *kvopv1.Registration, store *storepool.Store) (layout, error) {
	catalog, ok := store.Native().(kvstore.Catalog)
	if !ok {
		return nil, &blocked{kvopv1.ReasonFormatNotSupported, "the consul store has no service catalog"}
	}
	l := &catalogLayout{catalog: catalog, names: map[string]string{},
		check: kvstore.CatalogCheck{TTL: ttlOf(reg), DeregisterAfter: time.Minute}}
	if c := reg.Spec.ConsulCatalog; c != nil {
		l.tags = c.Tags
		if c.DeregisterCriticalServiceAfter != nil && c.DeregisterCriticalServiceAfter.Duration > 0 {
			l.check.DeregisterAfter = c.DeregisterCriticalServiceAfter.Duration
		}
	}
	return l, nil
}

func (l *catalogLayout) key(e discovery.Entry) (string, error) {
	return catalogKey(consulcatalog.ID(e)), nil
}

// canonical is the comparable form of an instance: what is registered, as JSON.
func canonical(svc kvstore.CatalogService) (string, error) {
	if len(svc.Tags) == 0 {
		svc.Tags = nil
	}
	if len(svc.Meta) == 0 {
		svc.Meta = nil
	}
	b, err := json.Marshal(svc)
	return string(b), err
}

func (l *catalogLayout) encode(w wantedEntry) (string, error) {
	return canonical(consulcatalog.Service(w.entry, l.tags))
}

func (l *catalogLayout) read(ctx context.Context, service, owner string) (map[string]storedEntry, error) {
	services, err := l.catalog.Services(ctx, service)
	if err != nil {
		return nil, err
	}
	out := map[string]storedEntry{}
	for _, svc := range services {
		v, err := canonical(svc)
		if err != nil {
			continue
		}
		key := catalogKey(svc.ID)
		l.names[key] = svc.Name
		out[key] = storedEntry{value: v, ours: svc.Meta[consulcatalog.MetaOwner] == owner}
	}
	return out, nil
}

func (l *catalogLayout) write(ctx context.Context, _ string, w wantedEntry, _ time.Duration) error {
	return l.catalog.RegisterService(ctx, consulcatalog.Service(w.entry, l.tags), l.check)
}

// removeOwned looks the instance up again and deregisters it if it is still ours. Consul's
// agent API has no conditional deregistration: between the look-up and the deregistration
// another owner could re-register the same ID — which only an ID collision across installs
// (same service and pod address) could cause.
func (l *catalogLayout) removeOwned(ctx context.Context, key, owner string) (bool, error) {
	name, ok := l.names[key]
	if !ok {
		return false, nil
	}
	services, err := l.catalog.Services(ctx, name)
	if err != nil {
		return false, err
	}
	for _, svc := range services {
		if catalogKey(svc.ID) == key && svc.Meta[consulcatalog.MetaOwner] == owner {
			return true, l.catalog.DeregisterService(ctx, svc.ID)
		}
	}
	return false, nil
}
