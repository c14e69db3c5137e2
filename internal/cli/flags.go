package cli

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Options are the global flags as given, before validation.
type Options struct {
	Backend            string
	Endpoints          string
	Prefix             string
	Timeout            time.Duration
	SessionTimeout     time.Duration
	CAFile             string
	CertFile           string
	KeyFile            string
	ServerName         string
	InsecureSkipVerify bool
	Username           string
	Password           string
	Token              string
}

// Settings are validated Options: everything opening a store needs.
type Settings struct {
	Backend kvstore.Backend
	Addrs   []string
	Prefix  string        // normalised; "" when keys are not below a prefix
	Timeout time.Duration // connection timeout, and the deadline of one-shot commands
	Config  *kvstore.Config
}

// Endpoints returns the addresses as the user would write them, for messages.
func (s *Settings) Endpoints() string { return strings.Join(s.Addrs, ",") }

// Defaults of the global flags.
const (
	DefaultBackend = kvstore.BoltDB
	DefaultBoltDB  = "kvop.db"
	DefaultTimeout = 10 * time.Second
	envPrefix      = "KVOP_"
)

// defaultAddrs are the client ports each server listens on out of the box.
var defaultAddrs = map[kvstore.Backend]string{
	kvstore.Etcd:      "127.0.0.1:2379",
	kvstore.EtcdV2:    "127.0.0.1:2379",
	kvstore.Consul:    "127.0.0.1:8500",
	kvstore.ZooKeeper: "127.0.0.1:2181",
	kvstore.BoltDB:    DefaultBoltDB,
}

// backendAliases are the other names people use for the backends.
var backendAliases = map[string]kvstore.Backend{
	"etcd3": kvstore.Etcd, "etcdv3": kvstore.Etcd,
	"etcd2": kvstore.EtcdV2,
	"zk":    kvstore.ZooKeeper,
	"bolt":  kvstore.BoltDB, "bbolt": kvstore.BoltDB,
}

// addGlobalFlags defines the flags every command shares, each with its KVOP_* variable, and
// returns their names (the ones applyEnv fills from the environment).
func addGlobalFlags(fs *pflag.FlagSet, o *Options) []string {
	fs.StringVar(&o.Backend, "backend", string(DefaultBackend), "key/value store: boltdb, etcd, etcdv2, consul or zookeeper")
	fs.StringVar(&o.Endpoints, "endpoints", "", // "" is each backend's own default (ParseEndpoints)
		"comma-separated host:port list; for boltdb the database file (default: kvop.db, 127.0.0.1:2379 for etcd and etcdv2, 127.0.0.1:8500 for consul, 127.0.0.1:2181 for zookeeper)")
	fs.StringVar(&o.Prefix, "prefix", "", "key prefix: every KEY, DIR and service lives below it")
	fs.DurationVar(&o.Timeout, "timeout", DefaultTimeout, "connection timeout, and how long a one-shot command may take")
	fs.DurationVar(&o.SessionTimeout, "session-timeout", 0, "ZooKeeper session timeout (0: 10s); a dead kvop's TTL keys and leadership last up to TTL + this")
	fs.StringVar(&o.CAFile, "ca-file", "", "TLS: PEM file of the CA certificates that sign the server's certificate")
	fs.StringVar(&o.CertFile, "cert-file", "", "TLS: PEM client certificate (with --key-file)")
	fs.StringVar(&o.KeyFile, "key-file", "", "TLS: PEM private key of --cert-file")
	fs.StringVar(&o.ServerName, "server-name", "", "TLS: name to verify in the server's certificate (default: the endpoint's host)")
	fs.BoolVar(&o.InsecureSkipVerify, "insecure-skip-verify", false, "TLS: do not verify the server's certificate (testing only)")
	fs.StringVar(&o.Username, "username", "", "etcd, etcdv2: user; zookeeper: digest user")
	fs.StringVar(&o.Password, "password", "", "password of --username (prefer KVOP_PASSWORD: flags show in ps)")
	fs.StringVar(&o.Token, "token", "", "consul: ACL token (prefer KVOP_TOKEN: flags show in ps)")

	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		names = append(names, f.Name)
		f.Usage += " [$" + envName(f.Name) + "]"
	})
	return names
}

// envName is the environment variable of a global flag: --ca-file is KVOP_CA_FILE.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every named flag that was not given on the command line from its KVOP_*
// variable, through the flag's own parser, so that flags win over the environment and a bad
// value is reported the same way from either. An empty variable counts as unset.
func applyEnv(fs *pflag.FlagSet, names []string, getenv func(string) string) error {
	for _, name := range names {
		f := fs.Lookup(name)
		if f == nil || f.Changed {
			continue
		}
		v := getenv(envName(name))
		if v == "" {
			continue
		}
		if err := f.Value.Set(v); err != nil {
			return usageErrorf("invalid value %q of %s: %v", v, envName(name), err)
		}
	}
	return nil
}

// ConfigFromFlags parses the global flags in args, fills what they leave unset from getenv,
// and validates the result. It is what every command does before it opens the store, as one
// function of strings so that it can be fuzzed.
func ConfigFromFlags(args []string, getenv func(string) string) (*Settings, error) {
	fs := pflag.NewFlagSet("kvop", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o Options
	names := addGlobalFlags(fs, &o)
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err}
	}
	if err := applyEnv(fs, names, getenv); err != nil {
		return nil, err
	}
	return o.Resolve()
}

// Resolve validates the options and builds the store configuration (reading TLS files).
func (o Options) Resolve() (*Settings, error) {
	backend, err := ParseBackend(o.Backend)
	if err != nil {
		return nil, err
	}
	addrs, err := ParseEndpoints(backend, o.Endpoints)
	if err != nil {
		return nil, err
	}
	prefix, err := ParsePrefix(o.Prefix)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		return nil, usageErrorf("--timeout must be positive, got %s", o.Timeout)
	}
	if o.SessionTimeout < 0 {
		return nil, usageErrorf("--session-timeout must not be negative, got %s", o.SessionTimeout)
	}
	tlsConfig, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	return &Settings{
		Backend: backend,
		Addrs:   addrs,
		Prefix:  prefix,
		Timeout: o.Timeout,
		Config: &kvstore.Config{
			ConnectionTimeout: o.Timeout,
			SessionTimeout:    o.SessionTimeout,
			TLS:               tlsConfig,
			Username:          o.Username,
			Password:          o.Password,
			Token:             o.Token,
		},
	}, nil
}

// ParseBackend accepts a backend name (any case, or a common alias) that is registered.
func ParseBackend(name string) (kvstore.Backend, error) {
	b := kvstore.Backend(strings.ToLower(strings.TrimSpace(name)))
	if alias, ok := backendAliases[string(b)]; ok {
		b = alias
	}
	for _, known := range kvstore.Backends() {
		if b == known {
			return b, nil
		}
	}
	return "", usageErrorf("unknown backend %q (want one of %v)", name, kvstore.Backends())
}

// ParseEndpoints turns the --endpoints value into the addresses kvstore.New takes. For boltdb
// the whole value is one file path (paths may contain commas). For the networked backends it
// is a comma-separated list of host:port, each returned in canonical form ("[v6]:port",
// decimal port), so that joining and parsing the result again gives the same list; empty items
// are ignored, and an empty value means the backend's usual local port.
func ParseEndpoints(backend kvstore.Backend, value string) ([]string, error) {
	if strings.TrimSpace(value) == "" {
		if d, ok := defaultAddrs[backend]; ok {
			return []string{d}, nil
		}
		return nil, usageErrorf("--endpoints is required for backend %s", backend)
	}
	if backend == kvstore.BoltDB {
		if strings.IndexByte(value, 0) >= 0 {
			return nil, usageErrorf("--endpoints: boltdb file path %q contains a NUL byte", value)
		}
		return []string{value}, nil
	}
	var addrs []string
	for _, item := range strings.Split(value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		addr, err := parseHostPort(item)
		if err != nil {
			return nil, usageErrorf("--endpoints: %v", err)
		}
		addrs = append(addrs, addr)
	}
	if len(addrs) == 0 {
		return nil, usageErrorf("--endpoints %q names no host:port", value)
	}
	return addrs, nil
}

// parseHostPort checks one host:port endpoint and returns it in canonical form.
func parseHostPort(item string) (string, error) {
	if strings.Contains(item, "://") {
		// The backend picks http or https from the TLS flags; a scheme here would be ignored
		// or, worse, contradict them.
		return "", fmt.Errorf("%q: give host:port without a scheme (TLS is set with --ca-file and friends)", item)
	}
	host, port, err := net.SplitHostPort(item)
	if err != nil {
		return "", fmt.Errorf("%q: want host:port: %v", item, err)
	}
	if host == "" {
		return "", fmt.Errorf("%q: host is missing", item)
	}
	if strings.Contains(host, ":") {
		ip, err := netip.ParseAddr(host)
		if err != nil || !validHostName(ip.Zone()) {
			return "", fmt.Errorf("%q: %q is not an IPv6 address", item, host)
		}
	} else if !validHostName(host) {
		return "", fmt.Errorf("%q: %q is not a host name or IP address", item, host)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("%q: port %q must be a number in 1..65535", item, port)
	}
	return net.JoinHostPort(host, strconv.FormatUint(n, 10)), nil
}

// validHostName accepts DNS names and IPv4 addresses (letters, digits, '.', '-', '_').
func validHostName(host string) bool {
	for _, r := range host {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// ParsePrefix normalises --prefix like a key; "" and "/" mean no prefix.
func ParsePrefix(prefix string) (string, error) {
	if strings.Trim(prefix, "/") == "" {
		return "", nil
	}
	p, err := kvstore.NormalizeKey(prefix)
	if err != nil {
		return "", usageErrorf("--prefix: %v", err)
	}
	return p, nil
}
