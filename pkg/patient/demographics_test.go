package patient

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pms/pms/pkg/platform/errs"
)

// TestValidateDemographics checks each new field's rules: the field named is the only one
// refused, and the valid forms pass.
func TestValidateDemographics(t *testing.T) {
	many := make([]Identifier, MaxIdentifiers+1)
	for i := range many {
		many[i] = Identifier{System: "urn:oid:1.2.3", Value: fmt.Sprint(i)}
	}
	cases := []struct {
		name  string
		run   func(*errs.Fields)
		field string // "" = valid
	}{
		{"gender female", func(b *errs.Fields) { validateGender(b, "female") }, ""},
		{"gender blank", func(b *errs.Fields) { validateGender(b, "") }, ""},
		{"gender bad", func(b *errs.Fields) { validateGender(b, "F") }, "gender"},
		{"phone e164", func(b *errs.Fields) { validatePhone(b, "+44 20 7946 0958") }, ""},
		{"phone dashes", func(b *errs.Fields) { validatePhone(b, "(555) 010-9999") }, ""},
		{"phone too long", func(b *errs.Fields) { validatePhone(b, strings.Repeat("1", MaxPhoneLen+1)) }, "phone"},
		{"phone 16 digits", func(b *errs.Fields) { validatePhone(b, "+1234567890123456") }, "phone"},
		{"phone letters", func(b *errs.Fields) { validatePhone(b, "call me") }, "phone"},
		{"phone plus inside", func(b *errs.Fields) { validatePhone(b, "12+34567") }, "phone"},
		{"family too long", func(b *errs.Fields) { validateFamily(b, strings.Repeat("a", MaxFamilyLen+1)) }, "family"},
		{"family control", func(b *errs.Fields) { validateFamily(b, "Lo\x00ve") }, "family"},
		{"given too many", func(b *errs.Fields) { validateGiven(b, make([]string, MaxGiven+1)) }, "given"},
		{"given blank", func(b *errs.Fields) { validateGiven(b, []string{"Ada", " "}) }, "given[1]"},
		{"identifier ok", func(b *errs.Fields) {
			validateIdentifiers(b, []Identifier{{System: "https://nhs.uk/nhs-number", Value: "943 476 5919"}, {System: "urn:oid:2.16.840.1.113883.4.1", Value: "123-45-6789"}})
		}, ""},
		{"identifier system not a uri", func(b *errs.Fields) { validateIdentifiers(b, []Identifier{{System: "national id", Value: "1"}}) }, "identifiers[0].system"},
		{"identifier system relative", func(b *errs.Fields) { validateIdentifiers(b, []Identifier{{System: "nhs-number", Value: "1"}}) }, "identifiers[0].system"},
		{"identifier system pipe", func(b *errs.Fields) { validateIdentifiers(b, []Identifier{{System: "urn:x|y", Value: "1"}}) }, "identifiers[0].system"},
		{"identifier mrn system", func(b *errs.Fields) { validateIdentifiers(b, []Identifier{{System: SystemMRN, Value: "0000000018"}}) }, "identifiers[0].system"},
		{"identifier value blank", func(b *errs.Fields) { validateIdentifiers(b, []Identifier{{System: "urn:x", Value: ""}}) }, "identifiers[0].value"},
		{"identifier value too long", func(b *errs.Fields) {
			validateIdentifiers(b, []Identifier{{System: "urn:x", Value: strings.Repeat("9", MaxIdentifierValueLen+1)}})
		}, "identifiers[0].value"},
		{"identifier twice", func(b *errs.Fields) { validateIdentifiers(b, []Identifier{{"urn:x", "1"}, {"urn:x", "1"}}) }, "identifiers[1]"},
		{"too many identifiers", func(b *errs.Fields) { validateIdentifiers(b, many) }, "identifiers"},
		{"confirm not ids", func(b *errs.Fields) { parseConfirm(b, []string{"x"}) }, "X-Confirm-Not-Duplicate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var bad errs.Fields
			c.run(&bad)
			if c.field == "" {
				if len(bad) != 0 {
					t.Fatalf("want valid, got %v", bad)
				}
				return
			}
			if _, ok := bad[c.field]; !ok || len(bad) != 1 {
				t.Fatalf("want exactly field %q invalid, got %v", c.field, bad)
			}
		})
	}
	if got := displayName("", "Lovelace", []string{"Ada", "Augusta"}); got != "Ada Augusta Lovelace" {
		t.Errorf("displayName = %q", got)
	}
}
