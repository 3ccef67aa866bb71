package httptransport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/transport/wire"
)

// fuzzSeeds are the bodies every decoder fuzz test starts from; they run in plain go test.
var fuzzSeeds = []string{
	`{"name":"Ada","email":"ada@example.org","address":"x","dateOfBirth":"1915-12-10"}`,
	`{"name":"A","email":"a@b.c","address":"y","dateOfBirth":"1990-01-01","id":"x","mrn":"M","version":3,"createdAt":"2026-01-01T00:00:00Z"}`,
	``, `{`, `}`, `[]`, `null`, `"x"`, `0`, `{}`, `{} {}`, `{"name":5}`, `{"name":null}`, `{"x":1}`,
	// Deeper than encoding/json's limit of 10000 levels.
	`{"a":` + strings.Repeat(`{"a":`, 10001) + `1` + strings.Repeat(`}`, 10002),
	`{"name":` + strings.Repeat(`[`, 10001),
	"{\"name\":\"\xff\xfe\"}",
	`{"name":"\ud800"}`,
	`{"version":1e999}`, `{"version":123456789012345678901234567890}`, `{"name":1e999}`,
	`{"name":"a","name":"b"}`, "\ufeff{}", `{"Name":"case"}`,
}

// checkDecodeError asserts that a decoder failure is a 4xx contract error that encodes to a
// valid contract body.
func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var e *errs.Error
	if !errors.As(err, &e) {
		t.Fatalf("decoder returned a non-contract error %T: %v", err, err)
	}
	if s := StatusOf(e.Kind); s < 400 || s > 499 {
		t.Fatalf("decoder error kind %q (status %d): %v", e.Kind, s, err)
	}
	rec := httptest.NewRecorder()
	EncodeError(observe.WithRequestID(context.Background(), "fuzz"), err, rec)
	var eb wire.ErrorBody
	if rec.Code != StatusOf(e.Kind) || json.Unmarshal(rec.Body.Bytes(), &eb) != nil || eb.Error != e.Kind {
		t.Fatalf("encoded error %d %q", rec.Code, rec.Body.String())
	}
}

func FuzzDecodeCreatePatient(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), "k")
	}
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		r := httptest.NewRequest("POST", "/patients", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header["Idempotency-Key"] = []string{key}
		_, err := decodeCreatePatient(context.Background(), r)
		checkDecodeError(t, err)
	})
}

func FuzzDecodeUpdatePatient(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), `"3"`, testID)
	}
	f.Add([]byte(fuzzSeeds[0]), `W/"9223372036854775807"`, strings.Repeat("x", 65))
	f.Add([]byte(fuzzSeeds[0]), `W/""`, "")
	f.Fuzz(func(t *testing.T, body []byte, ifMatch, id string) {
		r := httptest.NewRequest("PUT", "/patients/x", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json; charset=utf-8")
		r.Header["If-Match"] = []string{ifMatch}
		r = mux.SetURLVars(r, map[string]string{"id": id})
		req, err := decodeUpdatePatient(context.Background(), r)
		checkDecodeError(t, err)
		if err == nil && (req.ID != id || req.IfMatch < 0) {
			t.Fatalf("decoded %+v from id %q If-Match %q", req, id, ifMatch)
		}
	})
}

// checkJSONContentType judges one Content-Type value as DecodeJSON does.
func checkJSONContentType(ct string) error { return wire.CheckContentType([]string{ct}) }

// TestBearerTokenFraming: one Authorization header with a Bearer token of printable ASCII is
// kept; two headers, or a token with other bytes, leave the request without a token (401
// where one is needed, and nothing gRPC metadata would refuse is forwarded).
func TestBearerTokenFraming(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   string
	}{
		{"one token", []string{"Bearer abc.def.ghi"}, "abc.def.ghi"},
		{"scheme in lower case", []string{"bearer abc"}, "abc"},
		{"no header", nil, ""},
		{"two headers", []string{"Bearer abc", "Bearer abc"}, ""},
		{"two different headers", []string{"Bearer abc", "Bearer xyz"}, ""},
		{"Latin-1 byte", []string{"Bearer caf\xe9"}, ""},
		{"obs-text", []string{"Bearer \x80\xff"}, ""},
		{"Basic", []string{"Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for _, v := range tc.values {
				r.Header.Add("Authorization", v)
			}
			if got := authz.Token(bearerTokenToContext(context.Background(), r)); got != tc.want {
				t.Fatalf("token %q, want %q", got, tc.want)
			}
		})
	}
}

// TestQueryInstantRange: an instant outside years 0001–9999 once in UTC is refused (it has no
// RFC 3339 form for a client to send back, gRPC refuses it, and SQLite, comparing instants as
// text, found nothing before "10000-01-01"), and to=9999-12-31 means no upper bound.
func TestQueryInstantRange(t *testing.T) {
	for _, c := range []struct {
		query string
		ok    bool
		from  time.Time
		to    time.Time
	}{
		{"from=0001-01-01&to=9999-12-30", true, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)},
		{"to=9999-12-31", true, time.Time{}, time.Time{}},
		{"to=9999-12-31T23:59:59Z", true, time.Time{}, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"from=9999-12-31T23:00:00-01:00", false, time.Time{}, time.Time{}},
		{"from=0000-12-31", false, time.Time{}, time.Time{}},
		{"from=0001-01-01T00:00:00%2B00:01", false, time.Time{}, time.Time{}},
	} {
		r := httptest.NewRequest("GET", "/audit?"+c.query, nil)
		q, err := decodeAudit(context.Background(), r)
		checkDecodeError(t, err)
		if (err == nil) != c.ok || (c.ok && (!q.From.Equal(c.from) || !q.To.Equal(c.to))) {
			t.Errorf("%s: %v..%v, %v", c.query, q.From, q.To, err)
		}
	}
}
