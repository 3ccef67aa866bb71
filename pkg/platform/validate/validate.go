// Package validate holds the field checks every service applies in the contract's words
// (API.md, "Errors"): ids, email addresses, dates, free text. A service keeps only its own
// rules (which fields, which limits); the checks and their messages are the same everywhere,
// so a client sees one vocabulary.
package validate

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/pms/pms/pkg/platform/errs"
)

// Limits the contract fixes for every service.
const (
	MaxEmailLen = 254
	// DateLayout is the contract's date: YYYY-MM-DD.
	DateLayout = "2006-01-02"
)

// EarliestDate is the earliest date the contract accepts (a date of birth, a due date).
var EarliestDate = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

// ID checks that s is a UUID in its 36-character form and returns it in canonical lower-case
// form; the error names field.
func ID(s, field string) (string, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", errs.Invalid(map[string]string{field: "must be a UUID"})
	}
	return u.String(), nil
}

// Email returns why s is not a plain email address (no display name, no comments, a dotted
// domain, printable), or "".
func Email(s string) string {
	if s == "" {
		return "must not be blank"
	}
	if len(s) > MaxEmailLen {
		return "must be at most 254 characters"
	}
	if !Printable(s, false) {
		return "must be a valid email address"
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "must be a valid email address"
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || !strings.Contains(s[at+1:], ".") || strings.ContainsAny(s, " \"()<>[]\\,;:") {
		return "must be a valid email address"
	}
	return ""
}

// Date parses a real ISO date no earlier than EarliestDate, or returns why not.
func Date(s string) (time.Time, string) {
	if s == "" {
		return time.Time{}, "must not be blank"
	}
	d, err := time.Parse(DateLayout, s)
	if err != nil || len(s) != len(DateLayout) {
		return time.Time{}, "must be a real date in the form YYYY-MM-DD"
	}
	if d.Before(EarliestDate) {
		return time.Time{}, "must not be before 1900-01-01"
	}
	return d, ""
}

// Text checks a required free-text field already trimmed: not blank, at most max characters,
// no control characters (newlines and tabs allowed when multiline). The first failure is
// added to bad under field; it reports whether s passed.
func Text(bad *errs.Fields, field, s string, max int, multiline bool) bool {
	switch n := utf8.RuneCountInString(s); {
	case n == 0:
		bad.Add(field, "must not be blank")
	case n > max:
		bad.Add(field, fmt.Sprintf("must be at most %d characters", max))
	case !Printable(s, multiline):
		bad.Add(field, "must not contain control characters")
	default:
		return true
	}
	return false
}

// Printable reports whether s is valid UTF-8 without control characters (newlines and tabs
// allowed when multiline) and without U+FFFD (what JSON makes of a lone surrogate): what a
// person's text may hold, and what PostgreSQL can store (it refuses a NUL).
func Printable(s string, multiline bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == utf8.RuneError || (unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t'))) {
			return false
		}
	}
	return true
}
