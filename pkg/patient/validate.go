package patient

import (
	"strconv"
	"strings"
	"time"

	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/validate"
)

// Field limits from API.md.
const (
	MaxNameLen    = 100
	MaxAddressLen = 500
	MaxEmailLen   = validate.MaxEmailLen
	dateLayout    = validate.DateLayout
)

// fields is the editable part of a record, validated and normalised.
type fields struct {
	Name, Email, Address, DateOfBirth string
}

// validateFields checks and normalises the editable fields against today (UTC), reporting
// every bad field at once so a form can show them together. A blank name is left to the
// caller (checkName after displayName: it may be derived from family and given); a blank
// email means none (issue 19: email is optional).
func validateFields(name, email, address, dob string, today time.Time, bad *errs.Fields) fields {
	f := fields{
		Name:    strings.TrimSpace(name),
		Email:   strings.TrimSpace(email),
		Address: strings.TrimSpace(address),
	}
	if f.Name != "" {
		validate.Text(bad, "name", f.Name, MaxNameLen, false)
	}
	if f.Email != "" {
		if msg := validate.Email(f.Email); msg != "" {
			bad.Add("email", msg)
		}
	}
	validate.Text(bad, "address", f.Address, MaxAddressLen, true)
	if d, msg := validate.Date(dob); msg != "" {
		bad.Add("dateOfBirth", msg)
	} else if d.After(today) {
		bad.Add("dateOfBirth", "must not be in the future")
	} else {
		f.DateOfBirth = d.Format(dateLayout)
	}
	return f
}

// ParseID checks that s is a UUID and returns it in canonical lower-case form.
func ParseID(s string) (string, error) { return validate.ID(s, "id") }

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
