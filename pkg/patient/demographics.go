package patient

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/validate"
)

// SystemMRN is the identifier system under which a patient's MRN is shown among its
// identifiers (FHIR Identifier.system). The MRN stays server-assigned: a client may not send
// an identifier of this system.
const SystemMRN = "urn:pms:mrn"

// Identifier is a FHIR-style identifier: a system (an absolute URI naming the issuer, such as
// a national id register or an insurer) and the value it issued. A pair is unique among live
// patients.
type Identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// WithLists returns p with Given and Identifiers never nil, so the contract's JSON shows both
// as [] however the record was built (one read over gRPC, where an empty list and none are the
// same, answers like one read from the store). Records are built with their lists in place
// instead of fixing them in a MarshalJSON: encoding/json re-scans and compacts the output of
// every Marshaler, which cost a third of the CPU of a 500-record search.
func (p Patient) WithLists() Patient {
	if p.Given == nil {
		p.Given = []string{}
	}
	if p.Identifiers == nil {
		p.Identifiers = []Identifier{}
	}
	return p
}

// The FHIR administrative genders (http://hl7.org/fhir/administrative-gender).
var genders = map[string]bool{"male": true, "female": true, "other": true, "unknown": true}

// Demographic limits (docs/api.md, "Demographics").
const (
	MaxFamilyLen          = 100
	MaxGiven              = 5
	MaxGivenLen           = 100
	MaxPhoneLen           = 25
	MinPhoneDigits        = 3
	MaxPhoneDigits        = 15 // E.164
	MaxIdentifiers        = 10
	MaxIdentifierSystem   = 200
	MaxIdentifierValueLen = 100
)

// demographics are the fields of issue 19, validated and normalised.
type demographics struct {
	Family      string
	Given       []string
	Gender      string
	Phone       string
	Identifiers []Identifier
}

// validateFamily, validateGiven, validateGender, validatePhone and validateIdentifiers check
// and normalise one field each, so a create (all given) and an update (only the ones sent)
// share them.
func validateFamily(bad *errs.Fields, s string) string {
	s = strings.TrimSpace(s)
	if s != "" {
		validate.Text(bad, "family", s, MaxFamilyLen, false)
	}
	return s
}

func validateGiven(bad *errs.Fields, given []string) []string {
	if len(given) > MaxGiven {
		bad.Add("given", fmt.Sprintf("must have at most %d names", MaxGiven))
		return nil
	}
	out := make([]string, 0, len(given))
	for i, g := range given {
		g = strings.TrimSpace(g)
		validate.Text(bad, fmt.Sprintf("given[%d]", i), g, MaxGivenLen, false)
		out = append(out, g)
	}
	return out
}

func validateGender(bad *errs.Fields, s string) string {
	s = strings.TrimSpace(s)
	if s != "" && !genders[s] {
		bad.Add("gender", "must be one of male, female, other, unknown")
	}
	return s
}

// validatePhone accepts an optional leading +, then digits with spaces, hyphens, dots and
// parentheses between them: 3 to 15 digits (E.164's most), at most MaxPhoneLen characters.
func validatePhone(bad *errs.Fields, s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	if len(s) > MaxPhoneLen {
		bad.Add("phone", fmt.Sprintf("must be at most %d characters", MaxPhoneLen))
		return s
	}
	digits := 0
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '+' && i == 0:
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			bad.Add("phone", "must be digits with an optional leading + and spaces, hyphens, dots or parentheses")
			return s
		}
	}
	if digits < MinPhoneDigits || digits > MaxPhoneDigits {
		bad.Add("phone", fmt.Sprintf("must have %d to %d digits", MinPhoneDigits, MaxPhoneDigits))
	}
	return s
}

func validateIdentifiers(bad *errs.Fields, ids []Identifier) []Identifier {
	if len(ids) > MaxIdentifiers {
		bad.Add("identifiers", fmt.Sprintf("must have at most %d entries", MaxIdentifiers))
		return nil
	}
	out := make([]Identifier, 0, len(ids))
	seen := make(map[Identifier]bool, len(ids))
	for i, id := range ids {
		field := fmt.Sprintf("identifiers[%d]", i)
		id.System, id.Value = strings.TrimSpace(id.System), strings.TrimSpace(id.Value)
		if msg := identifierSystem(id.System); msg != "" {
			bad.Add(field+".system", msg)
		}
		validate.Text(bad, field+".value", id.Value, MaxIdentifierValueLen, false)
		if seen[id] {
			bad.Add(field, "is given twice")
		}
		seen[id] = true
		out = append(out, id)
	}
	return out
}

// identifierSystem is what is wrong with system as an identifier system, or "".
func identifierSystem(system string) string {
	switch {
	case system == "":
		return "must not be blank"
	case len(system) > MaxIdentifierSystem:
		return fmt.Sprintf("must be at most %d characters", MaxIdentifierSystem)
	case system == SystemMRN:
		return "is the MRN's system; the MRN is assigned by the server"
	case !validate.Printable(system, false) || strings.ContainsAny(system, " |"):
		return "must be an absolute URI"
	}
	if u, err := url.Parse(system); err != nil || u.Scheme == "" || (u.Opaque == "" && u.Host == "" && u.Path == "") {
		return "must be an absolute URI"
	}
	return ""
}

// displayName is the display name a record gets when the client gave none: the given names
// and the family name joined by spaces (FHIR HumanName.text's usual form); name itself when
// given.
func displayName(name, family string, given []string) string {
	if name != "" {
		return name
	}
	return strings.TrimSpace(strings.Join(append(append([]string{}, given...), family), " "))
}

// checkName reports a display name that is blank or too long once derived.
func checkName(bad *errs.Fields, name string) {
	switch n := utf8.RuneCountInString(name); {
	case n == 0:
		bad.Add("name", "must not be blank (give name, or family and given)")
	case n > MaxNameLen:
		bad.Add("name", fmt.Sprintf("must be at most %d characters", MaxNameLen))
	}
}

// parseIdentifierQuery splits a search's "system|value".
func parseIdentifierQuery(s string) (Identifier, bool) {
	system, value, ok := strings.Cut(s, "|")
	if !ok || system == "" || value == "" || len(system) > MaxIdentifierSystem || len(value) > MaxIdentifierValueLen {
		return Identifier{}, false
	}
	return Identifier{System: system, Value: value}, true
}

// withMRN returns the identifiers a record shows: its MRN under SystemMRN, then the stored ones.
func withMRN(mrn string, stored []Identifier) []Identifier {
	out := make([]Identifier, 0, len(stored)+1)
	if mrn != "" {
		out = append(out, Identifier{System: SystemMRN, Value: mrn})
	}
	for _, id := range stored {
		if id.System != SystemMRN {
			out = append(out, id)
		}
	}
	return out
}

// clientIdentifiers are ids without the MRN: what the identifiers table keeps.
func clientIdentifiers(ids []Identifier) []Identifier {
	out := make([]Identifier, 0, len(ids))
	for _, id := range ids {
		if id.System != SystemMRN {
			out = append(out, id)
		}
	}
	return out
}

// encodeGiven and decodeGiven keep the given names as a JSON array in one column.
func encodeGiven(given []string) string {
	if len(given) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(given)
	return string(b)
}

func decodeGiven(s string) []string {
	// encodeGiven writes a JSON array of strings; one without escapes (nearly every name) is
	// split directly, since json.Unmarshal per row cost a search of 500 records about 5% of its CPU.
	if len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' && !strings.ContainsRune(s, '\\') {
		inner := s[1 : len(s)-1]
		if inner == "" {
			return []string{}
		}
		if len(inner) >= 2 && inner[0] == '"' && inner[len(inner)-1] == '"' {
			parts := strings.Split(inner[1:len(inner)-1], `","`)
			if !slices.ContainsFunc(parts, func(p string) bool { return strings.ContainsRune(p, '"') }) {
				return parts
			}
		}
	}
	out := []string{}
	_ = json.Unmarshal([]byte(s), &out) // written by encodeGiven only
	if out == nil {
		out = []string{}
	}
	return out
}

func encodeIdentifiers(ids []Identifier) string {
	b, _ := json.Marshal(clientIdentifiers(ids))
	return string(b)
}

// rowIdentifiers is the identifiers column of a patients row (migration 00025): the client's
// identifiers as a JSON array sorted by system and value, the order reads have always shown.
func rowIdentifiers(ids []Identifier) string {
	c := clientIdentifiers(ids)
	slices.SortFunc(c, func(a, b Identifier) int {
		return cmp.Or(strings.Compare(a.System, b.System), strings.Compare(a.Value, b.Value))
	})
	b, _ := json.Marshal(c)
	return string(b)
}

func decodeIdentifiers(s string) []Identifier {
	if s == "[]" || s == "" {
		return nil // withMRN makes the list
	}
	var out []Identifier
	_ = json.Unmarshal([]byte(s), &out) // written by encodeIdentifiers only
	return out
}

// writeIdentifiers replaces patient id's identifiers with ids (the MRN left out) within tx;
// a pair a live patient already holds is ErrIdentifierTaken. The row's own copy
// (rowIdentifiers) is written by the caller's UPDATE of the record.
func (s *Store) writeIdentifiers(ctx context.Context, tx *sqlx.Tx, id string, ids []Identifier) error {
	if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM patient_identifiers WHERE patient_id = ?`), id); err != nil {
		return db.Classify(err)
	}
	return s.addIdentifiers(ctx, tx, id, ids)
}

// addIdentifiers inserts the client identifiers of patient id (a new patient has none to
// replace: create calls it without writeIdentifiers' delete).
func (s *Store) addIdentifiers(ctx context.Context, tx *sqlx.Tx, id string, ids []Identifier) error {
	for _, i := range clientIdentifiers(ids) {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO patient_identifiers (patient_id, system, value) VALUES (?, ?, ?)`), id, i.System, i.Value)
		if db.IsUniqueViolation(err, "patient_identifiers") {
			return ErrIdentifierTaken
		}
		if err != nil {
			return db.Classify(err)
		}
	}
	return nil
}

// checkEmail makes sure email (lower-cased) is held by no other live patient than the ones
// confirmed as different people, within tx, and returns the holders (the ids to audit as
// confirmed). On PostgreSQL a transaction-scoped advisory lock keyed by the email serialises
// the check and the write of two changes giving the same email, so two unconfirmed creates
// cannot both pass; SQLite's write transaction already runs alone.
func (s *Store) checkEmail(ctx context.Context, tx *sqlx.Tx, self, email string, confirmed []string) ([]string, error) {
	if email == "" {
		return nil, nil
	}
	email = strings.ToLower(email)
	if s.db.Dialect == db.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, emailLockKey(email)); err != nil {
			return nil, db.Classify(err)
		}
	}
	var holders []string
	// Planned for its email (db.PlannedPerCall): a generic plan of lower(email) = $1 read the
	// email's trigram index.
	if err := sqlx.SelectContext(ctx, s.db.PlannedPerCall(tx), &holders, tx.Rebind(`SELECT id FROM patients WHERE lower(email) = ? AND deleted_at IS NULL AND id <> ? ORDER BY id`), email, self); err != nil {
		return nil, db.Classify(err)
	}
	ok := make(map[string]bool, len(confirmed))
	for _, id := range confirmed {
		ok[id] = true
	}
	for _, h := range holders {
		if !ok[h] {
			return nil, ErrEmailTaken
		}
	}
	return holders, nil
}

// emailLockKey is the advisory-lock key of a lower-cased email: a hash, so the email itself
// never reaches pg_locks or a log of locks.
func emailLockKey(email string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("patient-email\x00" + email))
	return int64(h.Sum64())
}

// parseConfirm checks the ids of X-Confirm-Not-Duplicate.
func parseConfirm(bad *errs.Fields, ids []string) []string {
	if len(ids) > 50 {
		bad.Add("X-Confirm-Not-Duplicate", "must name at most 50 patients")
		return nil
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		pid, err := ParseID(strings.TrimSpace(id))
		if err != nil {
			bad.Add("X-Confirm-Not-Duplicate", "must be patient ids separated by commas")
			return nil
		}
		out = append(out, pid)
	}
	return out
}
