package wire

import (
	"strconv"
	"strings"

	"github.com/pms/pms/pkg/platform/errs"
)

// HeaderPrefer carries the caller's preferences (RFC 7240); PMS reads duplicate-check=strict
// on a registration (issue 19) and FHIR's handling=strict.
const HeaderPrefer = "Prefer"

// HeaderPossibleDuplicates is how many registered patients a registration may duplicate,
// on a 201 under the warn policy when there is at least one (docs/matching.md).
const HeaderPossibleDuplicates = "X-Possible-Duplicates"

// MaxPrefer bounds the Prefer header's values together.
const MaxPrefer = 1024

// DuplicateCheck reads duplicate-check from Prefer's values: "strict" when the caller asked
// for the strict check, "" when it did not. Other preferences are ignored, as RFC 7240 asks;
// a duplicate-check other than strict, or an oversized or non-ASCII header, is
// invalid_argument, not a silently unchecked registration.
func DuplicateCheck(values []string) (string, error) {
	bad := errs.Invalid(map[string]string{HeaderPrefer: "must be preferences such as duplicate-check=strict"})
	n := 0
	out := ""
	for _, v := range values {
		if n += len(v); n > MaxPrefer || !PrintableASCII(v) {
			return "", bad
		}
		for _, pref := range strings.Split(v, ",") {
			pref, _, _ = strings.Cut(pref, ";") // parameters of a preference are not used
			name, value, _ := strings.Cut(strings.TrimSpace(pref), "=")
			if !strings.EqualFold(strings.TrimSpace(name), "duplicate-check") {
				continue
			}
			value = strings.Trim(strings.TrimSpace(value), `"`)
			if !strings.EqualFold(value, "strict") {
				return "", errs.Invalid(map[string]string{HeaderPrefer: "duplicate-check must be strict"})
			}
			out = "strict"
		}
	}
	return out, nil
}

// PossibleDuplicates reads X-Possible-Duplicates (the client side); absent or unreadable is 0.
func PossibleDuplicates(v string) int {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
