package patient

import (
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/pms/pms/pkg/platform/errs"
)

// Field limits from API.md.
const (
	MaxNameLen    = 100
	MaxAddressLen = 500
	MaxEmailLen   = 254
	dateLayout    = "2006-01-02"
)

// earliestDate is the earliest date of birth (and registration) the contract accepts.
var earliestDate = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

// fields is the editable part of a record, validated and normalised.
type fields struct {
	Name, Email, Address, DateOfBirth string
}

// validateFields checks and normalises the editable fields against today (UTC), reporting
// every bad field at once so a form can show them together.
func validateFields(name, email, address, dob string, today time.Time, bad *errs.Fields) fields {
	f := fields{
		Name:    strings.TrimSpace(name),
		Email:   strings.TrimSpace(email),
		Address: strings.TrimSpace(address),
	}
	switch n := utf8.RuneCountInString(f.Name); {
	case n == 0:
		bad.Add("name", "must not be blank")
	case n > MaxNameLen:
		bad.Add("name", "must be at most 100 characters")
	case !printable(f.Name, false):
		bad.Add("name", "must not contain control characters")
	}
	if msg := checkEmail(f.Email); msg != "" {
		bad.Add("email", msg)
	}
	switch n := utf8.RuneCountInString(f.Address); {
	case n == 0:
		bad.Add("address", "must not be blank")
	case n > MaxAddressLen:
		bad.Add("address", "must be at most 500 characters")
	case !printable(f.Address, true):
		bad.Add("address", "must not contain control characters")
	}
	if d, msg := parseDate(dob); msg != "" {
		bad.Add("dateOfBirth", msg)
	} else if d.After(today) {
		bad.Add("dateOfBirth", "must not be in the future")
	} else {
		f.DateOfBirth = d.Format(dateLayout)
	}
	return f
}

// checkEmail returns why s is not a plain email address, or "".
func checkEmail(s string) string {
	if s == "" {
		return "must not be blank"
	}
	if len(s) > MaxEmailLen {
		return "must be at most 254 characters"
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" || !printable(s, false) {
		return "must be a valid email address"
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || !strings.Contains(s[at+1:], ".") || strings.ContainsAny(s, " \"()<>[]\\,;:") {
		return "must be a valid email address"
	}
	return ""
}

// parseDate parses a real ISO date no earlier than 1900-01-01.
func parseDate(s string) (time.Time, string) {
	if s == "" {
		return time.Time{}, "must not be blank"
	}
	d, err := time.Parse(dateLayout, s)
	if err != nil || len(s) != len(dateLayout) {
		return time.Time{}, "must be a real date in the form YYYY-MM-DD"
	}
	if d.Before(earliestDate) {
		return time.Time{}, "must not be before 1900-01-01"
	}
	return d, ""
}

// printable reports whether s has no control characters (newlines allowed when multiline)
// and no invalid UTF-8.
func printable(s string, multiline bool) bool {
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

// ParseID checks that s is a UUID and returns it in canonical lower-case form.
func ParseID(s string) (string, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", errs.Invalid(map[string]string{"id": "must be a UUID"})
	}
	return u.String(), nil
}

// MRN returns the medical record number for the n-th registration: nine digits and a Luhn
// check digit, so a mistyped MRN is caught before it finds the wrong patient.
func MRN(n int64) string {
	body := strconv.FormatInt(n, 10)
	if len(body) < 9 {
		body = strings.Repeat("0", 9-len(body)) + body
	}
	return body + string(rune('0'+luhnDigit(body)))
}

// ValidMRN reports whether s is a well-formed MRN with a correct check digit.
func ValidMRN(s string) bool {
	if len(s) < 10 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return int(s[len(s)-1]-'0') == luhnDigit(s[:len(s)-1])
}

// luhnDigit computes the Luhn check digit of a string of decimal digits.
func luhnDigit(digits string) int {
	sum := 0
	double := true
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return (10 - sum%10) % 10
}
