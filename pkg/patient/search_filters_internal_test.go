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

// TestSearchStatsEstimate: a search's share of the table, judged from pg_stats as densePage
// reads them: matching most common values count their frequency, matching histogram bounds
// their part of the rest; a q takes the largest of its columns' shares, filters multiply, and
// a search with a filter the statistics do not judge is not estimated.
func TestSearchStatsEstimate(t *testing.T) {
	st := &searchStats{rows: 1_000_000, cols: map[string]columnStats{
		// 10% of names are "Ada Lovelace"; the other 90% spread over four buckets, one of
		// them bounded by a Lovelace.
		"name":   {MCV: []string{"Ada Lovelace", "Alan Turing"}, MCVFreq: []float64{0.1, 0.1}, Hist: []string{"Bea Lovelace", "Carl Hopper", "Dan Quinn", "Eve Rossi"}},
		"email":  {Hist: []string{"ada.lovelace@example.org", "b@example.org", "c@example.org", "d@example.org"}},
		"mrn":    {Hist: []string{"MRN-1", "MRN-2"}},
		"gender": {MCV: []string{"female", "male"}, MCVFreq: []float64{0.5, 0.5}},
		"family": {NullFrac: 0.5, Hist: []string{"Lovelace", "Turing"}},
	}}
	for _, c := range []struct {
		q    ListQuery
		want int64
	}{
		{ListQuery{Q: "LOVEL"}, 100_000 + 800_000/4},                    // name: the MCV and a bound of the rest (email: 25%)
		{ListQuery{Q: "example"}, 1_000_000},                            // every email
		{ListQuery{Q: "al"}, 100_000},                                   // a prefix: "Alan Turing" only
		{ListQuery{Q: "example", Gender: "female"}, 500_000},            // filters multiply
		{ListQuery{Family: "lov"}, 500_000 / 2},                         // nulls are not in the histogram
		{ListQuery{Q: "zzz"}, 0},                                        // nothing in the sample
		{ListQuery{Q: "example", Email: "ada.lovelace@example.org"}, 0}, // exact email: counted
		{ListQuery{Gender: "male", Phone: "+441234"}, 0},                // phone: counted
		{ListQuery{Given: "ada"}, 0},                                    // no statistics of given
	} {
		if got := st.estimate(c.q); got != c.want {
			t.Errorf("%+v: estimate %d, want %d", c.q, got, c.want)
		}
	}
}
