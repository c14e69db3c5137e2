package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// tlsConfig builds the client TLS configuration from the TLS flags; nil when none is set
// (plain text). Each file is read here, before any connection, so that a missing or bad file
// is reported by its flag and path instead of as a handshake failure later.
func (o Options) tlsConfig() (*tls.Config, error) {
	if o.CAFile == "" && o.CertFile == "" && o.KeyFile == "" && o.ServerName == "" && !o.InsecureSkipVerify {
		return nil, nil
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, usageErrorf("--cert-file and --key-file must be given together")
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.ServerName,
		InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // the user asked for it, for tests
	}
	if o.CAFile != "" {
		pem, err := readFlagFile("--ca-file", o.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %q: no PEM certificate in it", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" {
		certPEM, err := readFlagFile("--cert-file", o.CertFile)
		if err != nil {
			return nil, err
		}
		keyPEM, err := readFlagFile("--key-file", o.KeyFile)
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("--cert-file %q with --key-file %q: %v", o.CertFile, o.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// readFile reads TLS files; tests replace it (the fuzz target must not read /dev/zero).
var readFile = os.ReadFile

// readFlagFile reads the file a flag names; its error names both, and only once.
func readFlagFile(flag, path string) ([]byte, error) {
	data, err := readFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is already in the message
		}
		return nil, fmt.Errorf("%s %q: cannot read: %v", flag, path, err)
	}
	return data, nil
}
