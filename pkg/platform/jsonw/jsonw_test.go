package jsonw_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/jsonw"
)

var tricky = []string{
	"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnew\nline\rcr\bbs\fff",
	"\x00\x01\x1f\x7f", "émigré Ωmega 日本", "line\u2028sep\u2029para", "bad \xff\xfe utf8 \xc3", "\U0001F600 emoji",
}

// FuzzString: String writes what encoding/json writes for every string.
func FuzzString(f *testing.F) {
	for _, s := range tricky {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := jsonw.String(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("String(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestStringsAndTime(t *testing.T) {
	for _, ss := range [][]string{nil, {}, tricky} {
		want, _ := json.Marshal(ss)
		if got := jsonw.Strings(nil, ss); !bytes.Equal(got, want) {
			t.Errorf("Strings(%q) = %s, want %s", ss, got, want)
		}
	}
	for _, tm := range []time.Time{{}, time.Date(2026, 12, 4, 16, 30, 1, 123456789, time.UTC), time.Date(1999, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 5*3600+1800))} {
		want, _ := json.Marshal(tm)
		if got := jsonw.Time(nil, tm); !bytes.Equal(got, want) {
			t.Errorf("Time(%v) = %s, want %s", tm, got, want)
		}
	}
}
