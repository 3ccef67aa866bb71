package patient

import (
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/errs"
)

func TestValidateFields(t *testing.T) {
	today := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	ok := func() [4]string { return [4]string{"Ada Lovelace", "ada@example.org", "1 Main St", "1990-02-03"} }
	cases := []struct {
		name  string
		edit  func(*[4]string)
		field string // "" = valid
	}{
		{"valid", func(*[4]string) {}, ""},
		// A blank name is left to checkName: it may be derived from family and given.
		{"name trimmed to empty", func(v *[4]string) { v[0] = "   " }, ""},
		{"name 100 runes", func(v *[4]string) { v[0] = strings.Repeat("é", 100) }, ""},
		{"name 101 runes", func(v *[4]string) { v[0] = strings.Repeat("a", 101) }, "name"},
		{"name control char", func(v *[4]string) { v[0] = "Ada\x00" }, "name"},
		{"name invalid utf8", func(v *[4]string) { v[0] = "Ada\xff" }, "name"},
		{"sql-looking name is just a name", func(v *[4]string) { v[0] = "Robert'); DROP TABLE patients;--" }, ""},
		{"email blank is none (optional)", func(v *[4]string) { v[1] = "" }, ""},
		{"email no at", func(v *[4]string) { v[1] = "ada.example.org" }, "email"},
		{"email display name", func(v *[4]string) { v[1] = "Ada <ada@example.org>" }, "email"},
		{"email no dot in domain", func(v *[4]string) { v[1] = "ada@localhost" }, "email"},
		{"email too long", func(v *[4]string) { v[1] = strings.Repeat("a", 250) + "@x.org" }, "email"},
		{"email sql", func(v *[4]string) { v[1] = "a'or'1'='1@x.org" }, ""},
		{"address blank", func(v *[4]string) { v[2] = "\t " }, "address"},
		{"address 501", func(v *[4]string) { v[2] = strings.Repeat("x", 501) }, "address"},
		{"address multiline", func(v *[4]string) { v[2] = "1 Main St\nSpringfield" }, ""},
		{"dob missing", func(v *[4]string) { v[3] = "" }, "dateOfBirth"},
		{"dob impossible", func(v *[4]string) { v[3] = "2023-02-30" }, "dateOfBirth"},
		{"dob wrong form", func(v *[4]string) { v[3] = "03/02/1990" }, "dateOfBirth"},
		{"dob with time", func(v *[4]string) { v[3] = "1990-02-03T00:00:00Z" }, "dateOfBirth"},
		{"dob future", func(v *[4]string) { v[3] = "2026-11-26" }, "dateOfBirth"},
		{"dob today", func(v *[4]string) { v[3] = "2026-11-25" }, ""},
		{"dob 1899", func(v *[4]string) { v[3] = "1899-12-31" }, "dateOfBirth"},
		{"dob 1900-01-01", func(v *[4]string) { v[3] = "1900-01-01" }, ""},
		{"leap day", func(v *[4]string) { v[3] = "2024-02-29" }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := ok()
			c.edit(&v)
			var bad errs.Fields
			validateFields(v[0], v[1], v[2], v[3], today, &bad)
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
}

func TestMRNCheckDigit(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range []int64{1, 2, 9, 10, 123456789, 1234567890} {
		m := MRN(n)
		if !ValidMRN(m) || len(m) < 10 || seen[m] {
			t.Fatalf("MRN(%d) = %q: valid=%v", n, m, ValidMRN(m))
		}
		seen[m] = true
		// Any single-digit typo is caught by the Luhn digit.
		for i := range m {
			b := []byte(m)
			b[i] = '0' + (b[i]-'0'+1)%10
			if ValidMRN(string(b)) {
				t.Fatalf("typo %q of %q passes the check digit", b, m)
			}
		}
	}
	for _, s := range []string{"", "123", "00000000a1", "0000000011"} {
		if s == MRN(1) {
			continue
		}
		if ValidMRN(s) {
			t.Fatalf("ValidMRN(%q) = true", s)
		}
	}
}

func TestParseIDAndPageToken(t *testing.T) {
	for _, s := range []string{"", "1", "../../etc/passwd", "00000000-0000-0000-0000-00000000000g", "{00000000-0000-0000-0000-000000000000}", "urn:uuid:00000000-0000-0000-0000-000000000000"} {
		if _, err := ParseID(s); errs.KindOf(err) != errs.InvalidArgument {
			t.Fatalf("ParseID(%q) err = %v, want invalid_argument", s, err)
		}
	}
	if id, err := ParseID("6BA7B810-9DAD-11D1-80B4-00C04FD430C8"); err != nil || id != "6ba7b810-9dad-11d1-80b4-00c04fd430c8" {
		t.Fatalf("ParseID canonical: %q %v", id, err)
	}
	if n, err := decodePageToken(encodePageToken(42)); err != nil || n != 42 {
		t.Fatalf("page token round trip: %d %v", n, err)
	}
	for _, tok := range []string{"x", "cDEuLTE", "cDIuNDI", strings.Repeat("A", 100), "p1.42", "%%%"} {
		if _, err := decodePageToken(tok); errs.KindOf(err) != errs.InvalidArgument {
			t.Fatalf("decodePageToken(%q) err = %v", tok, err)
		}
	}
}
