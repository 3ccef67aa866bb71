package patient

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
)

// Search by the demographics of issue 19 (ListQuery's Family, Given, Phone, Gender, BornFrom
// and BornTo), for FHIR's family, given, phone, gender and birthdate ranges and REST's filters
// of the same names. Every form but a given name on SQLite is served by an index (migration
// 00027; the date of birth by 00001's).

// MaxNameFilterLen is the longest family or given filter: the longest such name.
const MaxNameFilterLen = MaxFamilyLen

// validateSearchFilters checks and normalises the demographic filters of q in place: family
// and given trimmed, phone reduced to its digits (and leading +) as the index holds them,
// gender one of FHIR's, date bounds real dates (from after to matches nothing).
func validateSearchFilters(bad *errs.Fields, q *ListQuery) {
	for _, f := range []struct {
		name string
		v    *string
	}{{"family", &q.Family}, {"given", &q.Given}} {
		*f.v = strings.TrimSpace(*f.v)
		if utf8.RuneCountInString(*f.v) > MaxNameFilterLen {
			bad.Add(f.name, "must be at most 100 characters")
		}
	}
	if q.Phone != "" {
		var pb errs.Fields
		validatePhone(&pb, q.Phone)
		if pb.Err() != nil {
			bad.Add("phone", "must be a phone number: digits with an optional leading + and spaces, hyphens, dots or parentheses")
		} else {
			q.Phone = phoneKey(q.Phone)
		}
	}
	if q.Gender != "" && !genders[q.Gender] {
		bad.Add("gender", "must be one of male, female, other, unknown")
	}
	// A lower bound after the upper one is an empty range (FHIR's birthdate=lt1990&
	// birthdate=gt2000), not an error: the search matches nothing.
	for _, f := range []struct {
		name string
		v    string
	}{{"dateOfBirthFrom", q.BornFrom}, {"dateOfBirthTo", q.BornTo}} {
		if f.v == "" {
			continue
		}
		if _, err := time.Parse(dateLayout, f.v); err != nil || len(f.v) != len(dateLayout) {
			bad.Add(f.name, "must be a real date in the form YYYY-MM-DD")
		}
	}
}

// phoneKey is a phone as searched and indexed: without the spaces, hyphens, dots and
// parentheses validatePhone allows (the expression of migration 00027's patients_phone_key).
func phoneKey(s string) string {
	return strings.NewReplacer(" ", "", "-", "", ".", "", "(", "", ")", "").Replace(strings.TrimSpace(s))
}

// phoneKeySQL is phoneKey in SQL, the indexed expression (both databases).
const phoneKeySQL = `replace(replace(replace(replace(replace(phone, ' ', ''), '-', ''), '.', ''), '(', ''), ')', '')`

// demographicConditions adds the demographic filters of q (validated) to a search's WHERE
// clause and arguments.
func (s *Store) demographicConditions(q ListQuery, where []string, args []any) ([]string, []any) {
	if q.Family != "" {
		lf := strings.ToLower(q.Family)
		if s.db.Dialect == db.Postgres && (q.BornFrom != "" || q.BornTo != "") {
			// The family and the birth dates share one b-tree (lower(family), date_of_birth),
			// but a prefix is a range of its first column, which leaves the dates out of where
			// the scan starts and stops: "Xu" born in 1957 read every Xu of every year, 28,000
			// entries for 317 matches at a million patients (3.0 ms; 0.08 ms this way). The
			// family that is the term itself, the commonest case, is an equality the dates
			// can follow; the longer families that start with it are the rest of the prefix.
			where = append(where, `(lower(family) = ? OR (lower(family) ~>~ ? AND lower(family) LIKE ? ESCAPE '\'))`)
			args = append(args, lf, lf, escapeLike(lf)+"%")
		} else {
			where = append(where, `lower(family) LIKE ? ESCAPE '\'`)
			args = append(args, escapeLike(lf)+"%")
		}
		if s.db.Dialect == db.SQLite {
			// SQLite's LIKE cannot use an index on an expression; the byte range can.
			where = append(where, `lower(family) >= ? AND lower(family) < ?`)
			args = append(args, lf, prefixEnd(lf))
		}
	}
	if q.Given != "" {
		// given is a JSON array of strings: a name starts right after a quote. The term is
		// JSON-encoded as the names are, so a quote or backslash in it matches literally.
		b, _ := json.Marshal(strings.ToLower(q.Given))
		term := strings.TrimSuffix(strings.TrimPrefix(string(b), `"`), `"`)
		where = append(where, `lower(given) LIKE ? ESCAPE '\'`)
		args = append(args, `%"`+escapeLike(term)+"%")
	}
	if q.Phone != "" {
		where = append(where, phoneKeySQL+" = ?")
		args = append(args, q.Phone)
	}
	if q.Gender != "" {
		where = append(where, "gender = ?")
		args = append(args, q.Gender)
	}
	if q.BornFrom != "" {
		where = append(where, "date_of_birth >= ?")
		args = append(args, q.BornFrom)
	}
	if q.BornTo != "" {
		where = append(where, "date_of_birth <= ?")
		args = append(args, q.BornTo)
	}
	return where, args
}
