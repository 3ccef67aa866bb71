package auth

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/pms/pms/pkg/platform/errs"
)

// checkEmail returns why s is not a plain email address (no display name, no comments,
// a dotted domain), or "".
func checkEmail(s string) string {
	if s == "" {
		return "must not be blank"
	}
	if len(s) > MaxEmailLen {
		return "must be at most 254 characters"
	}
	if !plainText(s) {
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

// plainText reports whether s is valid UTF-8 without control characters or U+FFFD (what
// JSON makes of a lone surrogate): what an email address may hold, and what PostgreSQL can
// store (it refuses a NUL).
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// parseID checks that s is a UUID and returns it in canonical lower-case form.
func parseID(s string) (string, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", errs.Invalid(map[string]string{"id": "must be a UUID"})
	}
	return u.String(), nil
}
