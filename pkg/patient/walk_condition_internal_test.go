package patient

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestWalkConditionMatchesSearchCondition: on PostgreSQL a walk tests q against search_text
// (migration 00031) instead of the three fields, and finds exactly the records the fields
// do: never a substring that spans two fields (name's end and email's start, email's end and
// the MRN), a short q only at the start of a field, case folded as lower() folds it
// (non-ASCII too), LIKE's wildcards and the escape character literal, a record without MRN,
// deleted records left out, and a q holding the separator itself matched the old way.
func TestWalkConditionMatchesSearchCondition(t *testing.T) {
	d := dbtest.Open(t, db.Postgres, migrations.Patient(), DatabaseOptions()...)
	s := NewStore(d)
	ctx := context.Background()
	records := []struct{ name, email, mrn string }{
		{"Anna Ab", "cd.ef@example.org", "0000000001"},
		{"ÉLODIE Müller", "Elo.M@Example.ORG", "0000000002"},
		{"Zoë 100%_\\ Test", "zo_e@x.io", ""},
		{"Bob Org", "bob@org0", "0000000003"},
		{"Deleted Ab", "cd.deleted@example.org", "0000000004"},
	}
	now := time.Now().UTC()
	for i, r := range records {
		var mrn any
		if r.mrn != "" {
			mrn = r.mrn
		}
		var deleted any
		if i == len(records)-1 {
			deleted = now
		}
		if _, err := d.ExecContext(ctx, `INSERT INTO patients (id, mrn, name, email, address, date_of_birth, registered_date, version, created_at, updated_at, deleted_at)
			VALUES ($1, $2, $3, $4, '1 Main St', '1990-01-01', '2026-01-01', 1, $5, $5, $6)`, uuid.NewString(), mrn, r.name, r.email, now, deleted); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(cond string, args []any) []int64 {
		t.Helper()
		var out []int64
		if err := d.SelectContext(ctx, &out, d.Rebind(`SELECT seq FROM patients WHERE `+cond+` ORDER BY seq`), args...); err != nil {
			t.Fatalf("%s: %v", cond, err)
		}
		return out
	}
	walked := 0
	for _, q := range []string{
		"ab", "abc", "abcd", "ab\x01cd", "\x01", "cd", "ORG", "org0", "org000", "rg\x010", "0000", "00", "000000000",
		"élo", "ÉL", "müller", "elo.m", "100%", "%", "_", "%_\\", "\\", "zo_", "zo", "io", "io0", "x", "deleted", "test zo",
	} {
		lq := ListQuery{Q: q}
		want := seqs(s.searchCondition(lq))
		wcond, wargs := s.walkCondition(lq)
		if got := seqs(wcond, wargs); !slices.Equal(got, want) {
			t.Errorf("q=%q: the walk finds %v, the fields %v", q, got, want)
		}
		if len(wargs) == 1 {
			walked++
		}
	}
	if walked < 25 {
		t.Fatalf("only %d of the queries were matched against search_text", walked)
	}
}
