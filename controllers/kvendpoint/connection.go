package kvendpoint

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/pkg/kvstore"
)

// Keys of the referenced Secrets.
const (
	keyUsername = "username"
	keyPassword = "password"
	keyToken    = "token"
	keyCA       = "ca.crt"
	keyCert     = "tls.crt"
	keyKey      = "tls.key"
)

// openGrace is added to the connection timeout for the contexts we give the store: backends
// bound dialing and requests by the timeout themselves and tell an unreachable server
// (ErrNotReachable) from a caller that gave up only while the caller's deadline is later.
const openGrace = 2 * time.Second

// connection is everything a store is opened from, read from the spec and the Secrets.
type connection struct {
	backend kvstore.Backend
	addrs   []string
	prefix  string
	config  kvstore.Config
	// hash digests all of the above (Secret bytes included): a change means reopen.
	hash string
	// insecure: the server certificate is not verified (worth a Warning at every open).
	insecure bool
	// sensitive are Secret values that must never be shown, should a backend's error quote one.
	sensitive []string
}

// timeout is the connection timeout the store applies.
func (c *connection) timeout() time.Duration {
	if c.config.ConnectionTimeout > 0 {
		return c.config.ConnectionTimeout
	}
	return kvstore.DefaultConnectionTimeout
}

// where names the backend and its addresses for messages: "etcd at 10.0.0.1:2379".
func (c *connection) where() string {
	return fmt.Sprintf("%s at %s", c.backend, strings.Join(c.addrs, ","))
}

// open opens the store; Pool.Ensure calls it only when the hash changed.
func (c *connection) open(ctx context.Context) (kvstore.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout()+openGrace)
	defer cancel()
	return kvstore.New(ctx, c.backend, c.addrs, &c.config)
}

// redact removes Secret values from a message that quotes a backend's error.
func (c *connection) redact(msg string) string {
	for _, v := range c.sensitive {
		if v != "" {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	return msg
}

// readConnection builds the connection from the spec and the referenced Secrets.
func (r *Reconciler) readConnection(ctx context.Context, s *state) error {
	spec := s.endpoint.Spec
	c := &connection{backend: kvstore.Backend(spec.Backend), addrs: spec.Endpoints}
	if c.backend == kvstore.BoltDB {
		c.addrs = []string{spec.Path}
	}
	var err error
	if c.prefix, err = normalizePrefix(spec.Prefix); err != nil {
		return &notReady{reason: kvopv1.ReasonInvalidSpec, message: fmt.Sprintf("spec.prefix: %v", err)}
	}
	if spec.ConnectionTimeout != nil {
		c.config.ConnectionTimeout = spec.ConnectionTimeout.Duration
	}
	h := newDigest()
	h.add(string(c.backend), c.prefix, c.timeout().String())
	h.add(c.addrs...)
	if err := r.readCredentials(ctx, s.endpoint, c, h); err != nil {
		return err
	}
	if err := r.readTLS(ctx, s.endpoint, c, h); err != nil {
		return err
	}
	c.hash = h.sum()
	s.conn = c
	return nil
}

// readCredentials fills in the user and password, or the Consul token.
func (r *Reconciler) readCredentials(ctx context.Context, endpoint *kvopv1.KVEndpoint, c *connection, h *digest) error {
	ref := endpoint.Spec.CredentialsSecretRef
	if ref == nil {
		h.add("no credentials")
		return nil
	}
	secret, err := r.secret(ctx, endpoint.Namespace, ref.Name, "spec.credentialsSecretRef")
	if err != nil {
		return err
	}
	keys := []string{keyUsername, keyPassword}
	if c.backend == kvstore.Consul {
		keys = []string{keyToken}
	}
	values, err := requireKeys(secret, keys...)
	if err != nil {
		return err
	}
	h.add("credentials")
	h.add(values...)
	if c.backend == kvstore.Consul {
		c.config.Token = values[0]
		c.sensitive = append(c.sensitive, values[0])
	} else {
		c.config.Username, c.config.Password = values[0], values[1]
		c.sensitive = append(c.sensitive, values[1])
	}
	return nil
}

// secret fetches a referenced Secret; field names the spec field, for the message.
func (r *Reconciler) secret(ctx context.Context, namespace, name, field string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, secret)
	if apierrors.IsNotFound(err) {
		// The Secret watch brings us back when it is created.
		return nil, &notReady{reason: kvopv1.ReasonSecretNotFound,
			message: fmt.Sprintf("Secret %q (%s) does not exist", name, field)}
	}
	return secret, err
}

// requireKeys returns the values of keys in secret, or InvalidSecret naming the first one that
// is missing or empty.
func requireKeys(secret *corev1.Secret, keys ...string) ([]string, error) {
	values := make([]string, len(keys))
	for i, k := range keys {
		v := secret.Data[k]
		if len(v) == 0 {
			return nil, &notReady{reason: kvopv1.ReasonInvalidSecret,
				message: fmt.Sprintf("Secret %q has no %q key (or it is empty); it needs %s", secret.Name, k, strings.Join(keys, " and "))}
		}
		values[i] = string(v)
	}
	return values, nil
}

// normalizePrefix returns the prefix as the pool stores it: normalised, "" for none.
func normalizePrefix(prefix string) (string, error) {
	if strings.Trim(prefix, "/") == "" {
		return "", nil
	}
	return kvstore.NormalizeKey(prefix)
}

// digest hashes fields without ambiguity: each is length-prefixed, so ("ab","c") and
// ("a","bc") differ.
type digest struct{ h hash.Hash }

func newDigest() *digest { return &digest{h: sha256.New()} }

func (d *digest) add(fields ...string) {
	for _, f := range fields {
		_ = binary.Write(d.h, binary.BigEndian, uint64(len(f)))
		_, _ = io.WriteString(d.h, f)
	}
}

func (d *digest) sum() string { return hex.EncodeToString(d.h.Sum(nil)) }
