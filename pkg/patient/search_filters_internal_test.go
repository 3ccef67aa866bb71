package patient

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestFingerprintDemographicFilters: the search fingerprint of a query without demographic
// filters is what it was before they existed (the three fields), and each demographic filter
// changes it, so an investigator holding the key can tell such searches apart.
func TestFingerprintDemographicFilters(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	base := ListQuery{Q: "ada", Email: "a@b.c", DateOfBirth: "1990-01-01"}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(`["ada","a@b.c","1990-01-01"]`)) // the fingerprint's input before issue 19
	if got, want := fingerprint(key, base), hex.EncodeToString(m.Sum(nil)); got != want {
		t.Fatalf("fingerprint %s, want the one of before: %s", got, want)
	}
	seen := map[string]string{fingerprint(key, base): "none"}
	for name, q := range map[string]ListQuery{
		"family": {Family: "Love"}, "given": {Given: "Ada"}, "phone": {Phone: "+1555"}, "gender": {Gender: "female"},
		"from": {BornFrom: "1990-01-01"}, "to": {BornTo: "1990-01-01"},
	} {
		q.Q, q.Email, q.DateOfBirth = base.Q, base.Email, base.DateOfBirth
		f := fingerprint(key, q)
		if other, dup := seen[f]; dup {
			t.Fatalf("%s has the fingerprint of %s", name, other)
		}
		seen[f] = name
	}
}
