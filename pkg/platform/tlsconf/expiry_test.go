package tlsconf

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestExpiryGauge: the gauge reports the notAfter of the certificate being served, and
// follows a rotation to a certificate that expires sooner.
func TestExpiryGauge(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	if err := Generate(dir, []string{"patient"}, nil, now); err != nil {
		t.Fatal(err)
	}
	reloadEvery = 0
	t.Cleanup(func() { reloadEvery = time.Second })
	f := Files{Cert: filepath.Join(dir, "patient.pem"), Key: filepath.Join(dir, "patient-key.pem"), CA: filepath.Join(dir, "ca.pem")}
	c, err := Server(f)
	if err != nil {
		t.Fatal(err)
	}
	g := ExpiryGauge("patient", c)
	want := func(at time.Time) {
		t.Helper()
		if got := testutil.ToFloat64(g); got != float64(at.Unix()) {
			t.Errorf("expiry gauge %v, want %v (%s)", got, at.Unix(), at)
		}
	}
	want(now.Add(LeafLifetime))
	// A rotation (a certificate made 300 days earlier, so it expires 300 days sooner).
	earlier := now.Add(-300 * 24 * time.Hour)
	if err := Generate(dir, []string{"patient"}, nil, earlier); err != nil {
		t.Fatal(err)
	}
	want(earlier.Add(LeafLifetime))
	if _, err := NotAfter(nil); err == nil {
		t.Error("NotAfter(nil): want an error")
	}
}
