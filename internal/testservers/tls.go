package testservers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLS is certificate material made for one test run: a CA, a server certificate for 127.0.0.1
// and localhost, and a client certificate (for servers that require mutual TLS), written as PEM
// files in Dir. Nothing here is fit for anything but tests.
type TLS struct {
	Dir            string
	CAFile         string // CA certificate
	ServerCertFile string
	ServerKeyFile  string // PKCS#8
	ServerPEMFile  string // server key and certificate in one file (ZooKeeper's PEM key store)
	ClientCertFile string
	ClientKeyFile  string

	caPool     *x509.CertPool
	clientCert tls.Certificate
}

// NewTLS generates fresh certificate material in a temporary directory.
func NewTLS() (*TLS, error) {
	dir, err := os.MkdirTemp("", "kvop-tls-")
	if err != nil {
		return nil, err
	}
	return newTLSIn(dir, "kvop test CA")
}

// TLSForTest generates certificate material for the test; it is removed when the test ends.
func TLSForTest(t testing.TB) *TLS {
	t.Helper()
	ts, err := newTLSIn(t.TempDir(), "kvop test CA")
	if err != nil {
		t.Fatalf("generating test certificates: %v", err)
	}
	return ts
}

// OtherCA returns material from an unrelated CA, to prove that a client trusting the wrong CA
// is refused.
func (ts *TLS) OtherCA() (*TLS, error) {
	return newTLSIn(filepath.Join(ts.Dir, "other"), "unrelated test CA")
}

func newTLSIn(dir, caName string) (*TLS, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: caName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)

	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			// Both usages: Consul's server talks RPC to itself and checks the client usage too.
			ExtKeyUsage: []x509.ExtKeyUsage{usage, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
			DNSNames:    []string{"localhost", "server.dc1.consul"},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
	}
	serverCert, serverKey, err := leaf(2, "kvop test server", x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	clientCert, clientKey, err := leaf(3, "kvop test client", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})

	ts := &TLS{
		Dir:            dir,
		CAFile:         filepath.Join(dir, "ca.crt"),
		ServerCertFile: filepath.Join(dir, "server.crt"),
		ServerKeyFile:  filepath.Join(dir, "server.key"),
		ServerPEMFile:  filepath.Join(dir, "server.pem"),
		ClientCertFile: filepath.Join(dir, "client.crt"),
		ClientKeyFile:  filepath.Join(dir, "client.key"),
		caPool:         x509.NewCertPool(),
	}
	files := map[string][]byte{
		ts.CAFile:         caPEM,
		ts.ServerCertFile: serverCert,
		ts.ServerKeyFile:  serverKey,
		ts.ServerPEMFile:  append(append([]byte{}, serverKey...), serverCert...),
		ts.ClientCertFile: clientCert,
		ts.ClientKeyFile:  clientKey,
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	ts.caPool.AddCert(ca)
	if ts.clientCert, err = tls.X509KeyPair(clientCert, clientKey); err != nil {
		return nil, fmt.Errorf("client key pair: %w", err)
	}
	return ts, nil
}

// ClientConfig trusts the CA and presents the client certificate.
func (ts *TLS) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: ts.caPool, Certificates: []tls.Certificate{ts.clientCert}, MinVersion: tls.VersionTLS12}
}

// CAOnlyConfig trusts the CA but presents no client certificate.
func (ts *TLS) CAOnlyConfig() *tls.Config {
	return &tls.Config{RootCAs: ts.caPool, MinVersion: tls.VersionTLS12}
}
