package httptransport

import (
	"context"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/pms/pms/pkg/analytics"
)

func TestDecodeSummaryQuery(t *testing.T) {
	for _, c := range []struct {
		query string
		ok    bool
		want  analytics.SummaryQuery
	}{
		{"", true, analytics.SummaryQuery{}},
		{"from=2026-11-01&to=2026-11-30", true, analytics.SummaryQuery{From: "2026-11-01", To: "2026-11-30"}},
		{"from=", true, analytics.SummaryQuery{}},
		{"to=2026-11-30", true, analytics.SummaryQuery{To: "2026-11-30"}},
		{"from=2026-11-30&to=2026-11-01", false, analytics.SummaryQuery{}},
		{"from=11/01/2026", false, analytics.SummaryQuery{}},
		{"from=2026-11-01&from=2026-11-02", false, analytics.SummaryQuery{}},
		{"limit=10", false, analytics.SummaryQuery{}},
		{"from=%zz", false, analytics.SummaryQuery{}},
	} {
		r := httptest.NewRequest("GET", "/summary", nil)
		r.URL.RawQuery = c.query
		q, err := decodeSummaryQuery(context.Background(), r)
		checkDecodeError(t, err)
		if (err == nil) != c.ok || (c.ok && q != c.want) {
			t.Errorf("%q: %+v, %v", c.query, q, err)
		}
	}
}

func FuzzDecodeSummaryQuery(f *testing.F) {
	for _, s := range []string{"", "from=2026-11-01", "from=2026-11-01&to=2026-11-01", "to=0000-00-00", "from=9999-12-31&to=0001-01-01",
		"from=%00", "from=2026-11-01%00", "from=+2026-11-01", "from=2026-1-1", "x=1&from=2026-11-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/summary", nil)
		r.URL.RawQuery = raw
		q, err := decodeSummaryQuery(context.Background(), r)
		checkDecodeError(t, err)
		if err == nil {
			v, _ := url.ParseQuery(raw)
			if q.From != v.Get("from") || q.To != v.Get("to") {
				t.Fatalf("%q decoded as %+v", raw, q)
			}
		}
	})
}
