package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// NotAfter is the expiry of the certificate c serves now (read through GetCertificate, so a
// rotated certificate counts from the moment it is served).
func NotAfter(c *tls.Config) (time.Time, error) {
	if c == nil || c.GetCertificate == nil {
		return time.Time{}, errors.New("tls: no serving certificate")
	}
	cert, err := c.GetCertificate(nil)
	if err != nil {
		return time.Time{}, err
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return time.Time{}, errors.New("tls: no serving certificate")
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return time.Time{}, err
		}
	}
	return leaf.NotAfter, nil
}

// ExpiryGauge is pms_<service>_tls_certificate_expiry_timestamp_seconds: the notAfter of the
// certificate the service serves, as Unix seconds, read at every scrape. The rule
// PMSCertificateExpiresSoon alerts on it before a forgotten rotation takes the platform down.
func ExpiryGauge(service string, c *tls.Config) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "pms", Subsystem: service, Name: "tls_certificate_expiry_timestamp_seconds",
		Help: "Expiry (notAfter) of the TLS certificate this service serves, Unix seconds."}, func() float64 {
		t, err := NotAfter(c)
		if err != nil {
			return 0
		}
		return float64(t.Unix())
	})
}
