package kvendpoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strconv"

	kvopv1 "github.com/kvop/kvop/api/v1"
)

// readTLS fills in the TLS configuration from spec.tls and its Secret.
func (r *Reconciler) readTLS(ctx context.Context, endpoint *kvopv1.KVEndpoint, c *connection, h *digest) error {
	spec := endpoint.Spec.TLS
	if spec == nil {
		h.add("plain text")
		return nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         spec.ServerName,
		InsecureSkipVerify: spec.InsecureSkipVerify, //nolint:gosec // the user asked; we warn at every open
	}
	h.add("tls", spec.ServerName, strconv.FormatBool(spec.InsecureSkipVerify))
	c.insecure = spec.InsecureSkipVerify
	c.config.TLS = cfg
	if spec.SecretRef == nil {
		h.add("system roots")
		return nil // RootCAs nil: the system roots
	}
	secret, err := r.secret(ctx, endpoint.Namespace, spec.SecretRef.Name, "spec.tls.secretRef")
	if err != nil {
		return err
	}
	name := secret.Name
	ca, cert, key := secret.Data[keyCA], secret.Data[keyCert], secret.Data[keyKey]
	h.add(string(ca), string(cert), string(key))

	switch {
	case len(ca) > 0:
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(ca) {
			return invalidTLS("Secret %q: %s holds no PEM certificate", name, keyCA)
		}
	case !spec.InsecureSkipVerify:
		// Without a CA nothing would tell the backend from an impostor (beyond the system roots,
		// which a Secret that names a CA does not mean to fall back to).
		return &notReady{reason: kvopv1.ReasonInvalidSecret,
			message: fmt.Sprintf("Secret %q has no %q key (the CA to trust)", name, keyCA)}
	}

	switch {
	case len(cert) == 0 && len(key) == 0:
		return nil // no client certificate: one-way TLS
	case len(cert) == 0 || len(key) == 0:
		return invalidTLS("Secret %q: mutual TLS needs both %s and %s, it has only one", name, keyCert, keyKey)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		// crypto/tls's errors describe the problem, never the key material.
		return invalidTLS("Secret %q: %s and %s are not a usable key pair: %v", name, keyCert, keyKey, err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	c.sensitive = append(c.sensitive, string(key))
	return nil
}

func invalidTLS(format string, args ...any) error {
	return &notReady{reason: kvopv1.ReasonInvalidTLS, message: fmt.Sprintf(format, args...)}
}
