// Package tlsconf is the platform's TLS: server and client configurations built from PEM
// files (a certificate, its key, and the CA that signs the platform's certificates), TLS 1.2
// or later with Go's default cipher suites, and certificates read again from disk when their
// files change, so a rotated certificate is served without a restart. Generate makes a local
// CA and one certificate per service for development and compose (`pms certs`).
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files names a party's PEM files. Cert and Key are its certificate chain and private key;
// CA is the certificate authority it trusts: servers verify client certificates with it,
// clients verify servers with it.
type Files struct {
	Cert, Key, CA string
}

// Enabled reports whether a certificate is configured.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" }

// check refuses half a configuration.
func (f Files) check() error {
	if (f.Cert == "") != (f.Key == "") {
		return errors.New("tls: a certificate needs its key and a key its certificate")
	}
	return nil
}

// Server returns the configuration of a listener serving f's certificate: TLS 1.2+, the
// certificate re-read when its files change, and with a CA, client certificates verified
// against it when presented (a client without one is still served: services check the caller
// by its token, and the gateway's public port has no client certificates).
func Server(f Files) (*tls.Config, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	kp, err := newKeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get() }}
	if f.CA != "" {
		pool, err := loadPool(f.CA)
		if err != nil {
			return nil, err
		}
		c.ClientCAs, c.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return c, nil
}

// Client returns the configuration of a client trusting f.CA (the system roots when empty)
// and presenting f's certificate when one is configured (mutual TLS).
func Client(f Files) (*tls.Config, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pool, err := loadPool(f.CA)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if f.Enabled() {
		kp, err := newKeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, err
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get() }
	}
	return c, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls: CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tls: CA %s holds no PEM certificate", path)
	}
	return pool, nil
}

// reloadEvery bounds how often a key pair's files are looked at (tests set it to 0).
var reloadEvery = time.Second

// keyPair is a certificate and key read from files, read again when either file changes
// (checked at most once a second). A pair that no longer loads (a half-written rotation)
// leaves the last good one in use.
type keyPair struct {
	cert, key string

	mu      sync.Mutex
	current *tls.Certificate
	stamp   string
	checked time.Time
}

func newKeyPair(cert, key string) (*keyPair, error) {
	kp := &keyPair{cert: cert, key: key}
	if err := kp.load(); err != nil {
		return nil, err
	}
	return kp, nil
}

// stampOf identifies the files' versions: sizes and modification times.
func (kp *keyPair) stampOf() (string, error) {
	var s string
	for _, p := range []string{kp.cert, kp.key} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

func (kp *keyPair) load() error {
	stamp, err := kp.stampOf()
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	c, err := tls.LoadX509KeyPair(kp.cert, kp.key)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	kp.current, kp.stamp = &c, stamp
	return nil
}

func (kp *keyPair) get() (*tls.Certificate, error) {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	if time.Since(kp.checked) >= reloadEvery {
		kp.checked = time.Now()
		if stamp, err := kp.stampOf(); err == nil && stamp != kp.stamp {
			_ = kp.load() // on failure the last good pair stays
		}
	}
	return kp.current, nil
}
