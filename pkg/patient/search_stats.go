package patient

import (
	"context"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
)

// searchStats is what PostgreSQL's statistics (pg_stats, kept by ANALYZE from a sample of the
// whole table) say of the columns a search matches: enough for densePage to judge, in Go and
// without a round trip, whether a search matches more than ExactCountLimit records. The
// planner cannot tell it: it keeps statistics of name and email, not of lower(name) and
// lower(email), which the searches match (every index on those is partial), so it guesses a
// pattern's matches from its length: every 3-letter substring 8% of the table, "example"
// (every email) one row. Statistics of the expressions (CREATE STATISTICS) fixed its guess
// but also its plans: at a thousand patients a common substring's count then read every
// live row instead of the trigram index, 17 times slower.
type searchStats struct {
	rows int64 // the table's size (pg_class.reltuples; -1 before the first ANALYZE)
	cols map[string]columnStats
}

// columnStats is one column's pg_stats: its most common values with their frequencies (as
// shares of the table), the bounds of equal-sized buckets of the rest, and the share of nulls.
type columnStats struct {
	NullFrac float64
	MCV      []string
	MCVFreq  []float64
	Hist     []string
}

// readSearchStats reads the statistics of the searched columns of the patients table in the
// connection's schema.
func readSearchStats(ctx context.Context, qr sqlx.QueryerContext) (*searchStats, error) {
	st := &searchStats{cols: map[string]columnStats{}}
	var rows float64
	if err := sqlx.GetContext(ctx, qr, &rows, `SELECT reltuples FROM pg_class WHERE oid = 'patients'::regclass`); err != nil {
		return nil, db.Classify(err)
	}
	st.rows = int64(rows)
	var cols []struct {
		Name     string  `db:"attname"`
		NullFrac float64 `db:"null_frac"`
		MCV      string  `db:"mcv"`
		MCVFreq  string  `db:"mcv_freq"`
		Hist     string  `db:"hist"`
	}
	if err := sqlx.SelectContext(ctx, qr, &cols, `SELECT attname, null_frac,
		coalesce(array_to_json(most_common_vals::text::text[])::text, '[]') AS mcv,
		coalesce(array_to_json(most_common_freqs)::text, '[]') AS mcv_freq,
		coalesce(array_to_json(histogram_bounds::text::text[])::text, '[]') AS hist
		FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'patients'
		AND attname IN ('name', 'email', 'mrn', 'family', 'given', 'gender', 'date_of_birth')`); err != nil {
		return nil, db.Classify(err)
	}
	for _, c := range cols {
		cs := columnStats{NullFrac: c.NullFrac}
		if json.Unmarshal([]byte(c.MCV), &cs.MCV) != nil || json.Unmarshal([]byte(c.MCVFreq), &cs.MCVFreq) != nil ||
			json.Unmarshal([]byte(c.Hist), &cs.Hist) != nil || len(cs.MCV) != len(cs.MCVFreq) {
			continue // unreadable: the column counts as unknown, so no search on it goes uncounted
		}
		st.cols[c.Name] = cs
	}
	return st, nil
}

// share is the part of the table whose value satisfies match, by the column's statistics: the
// matching most common values' frequencies, and the matching bucket bounds' part of the rest.
// A column without statistics has none (a search on it is counted).
func (c columnStats) share(match func(string) bool) float64 {
	var sel, common float64
	for i, v := range c.MCV {
		common += c.MCVFreq[i]
		if match(v) {
			sel += c.MCVFreq[i]
		}
	}
	if len(c.Hist) > 0 {
		n := 0
		for _, v := range c.Hist {
			if match(v) {
				n++
			}
		}
		sel += max(0, 1-c.NullFrac-common) * float64(n) / float64(len(c.Hist))
	}
	return sel
}

// lowered matches a value's lower case.
func lowered(match func(string) bool) func(string) bool {
	return func(v string) bool { return match(strings.ToLower(v)) }
}

// estimate is the number of records q matches by the statistics, the filters taken as
// independent; 0 for a search with a filter they do not judge (exact email, date of birth,
// identifier, phone: each matches few records, and is counted). A q matches name, email or
// MRN; its share is the largest of the three, not their union: a name and its email match
// together, and overrating a search would make densePage's walk too short to fill a page.
func (st *searchStats) estimate(q ListQuery) int64 {
	if q.Email != "" || q.DateOfBirth != "" || q.Identifier != "" || q.Phone != "" || len(st.cols) == 0 {
		return 0
	}
	sel, judged := 1.0, false
	and := func(p float64) { sel, judged = sel*p, true }
	if q.Q != "" {
		lq := strings.ToLower(q.Q)
		match := func(v string) bool { return strings.Contains(v, lq) }
		if utf8.RuneCountInString(lq) < MinSubstringLen {
			match = func(v string) bool { return strings.HasPrefix(v, lq) }
		}
		and(max(st.cols["name"].share(lowered(match)), st.cols["email"].share(lowered(match)), st.cols["mrn"].share(match)))
	}
	if q.Family != "" {
		lf := strings.ToLower(q.Family)
		and(st.cols["family"].share(lowered(func(v string) bool { return strings.HasPrefix(v, lf) })))
	}
	if q.Given != "" {
		b, _ := json.Marshal(strings.ToLower(q.Given))
		term := `"` + strings.TrimSuffix(strings.TrimPrefix(string(b), `"`), `"`)
		and(st.cols["given"].share(lowered(func(v string) bool { return strings.Contains(v, term) })))
	}
	if q.Gender != "" {
		and(st.cols["gender"].share(func(v string) bool { return v == q.Gender }))
	}
	if q.BornFrom != "" || q.BornTo != "" {
		and(st.cols["date_of_birth"].share(func(v string) bool {
			return (q.BornFrom == "" || v >= q.BornFrom) && (q.BornTo == "" || v <= q.BornTo)
		}))
	}
	if !judged {
		return 0
	}
	return int64(sel * float64(st.rows))
}
