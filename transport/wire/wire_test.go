package wire

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

func TestEchoNameBounded(t *testing.T) {
	long := strings.Repeat("é", 100)
	got := EchoName(long)
	if len(got) > maxEchoedName+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("EchoName = %q", got)
	}
	if EchoName("\xffa") != "\uFFFDa" {
		t.Errorf("EchoName kept invalid UTF-8")
	}
}

// TestBodyRules: the body rules every transport shares, each failure with its kind.
func TestBodyRules(t *testing.T) {
	type body struct {
		Name string `json:"name"`
	}
	huge := []byte(`{"name":"` + strings.Repeat("a", MaxBodyBytes) + `"}`)
	for _, c := range []struct {
		name  string
		raw   []byte
		kind  errs.Kind
		field string
	}{
		{"ok", []byte(`{"name":"a"}`), "", ""},
		{"over 1 MiB", huge, errs.PayloadTooLarge, ""},
		{"unknown field", []byte(`{"name":"a","x":1}`), errs.InvalidArgument, "x"},
		{"wrong type", []byte(`{"name":1}`), errs.InvalidArgument, "name"},
		{"not an object", []byte(`[]`), errs.InvalidArgument, ""},
		{"empty", nil, errs.InvalidArgument, ""},
		{"trailing data", []byte(`{} {}`), errs.InvalidArgument, ""},
		{"invalid UTF-8", []byte("{\"name\":\"\xff\"}"), errs.InvalidArgument, ""},
	} {
		v, err := DecodeBody[body](c.raw)
		if errs.KindOf(err) != c.kind && !(c.kind == "" && err == nil) {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if c.kind == "" && v.Name != "a" {
			t.Errorf("%s: decoded %+v", c.name, v)
		}
		if c.field != "" {
			if e := errs.As(err); e == nil || e.Fields[c.field] == "" {
				t.Errorf("%s: no field %q in %v", c.name, c.field, err)
			}
		}
	}
}

// TestReadBody: a declared or read length over the limit is payload_too_large, as is a
// reader capped by net/http's MaxBytesReader; a nil body is empty.
func TestReadBody(t *testing.T) {
	over := bytes.Repeat([]byte("a"), MaxBodyBytes+1)
	if _, err := ReadBody(bytes.NewReader(nil), MaxBodyBytes+1); errs.KindOf(err) != errs.PayloadTooLarge {
		t.Errorf("declared length: %v", err)
	}
	if _, err := ReadBody(bytes.NewReader(over), -1); errs.KindOf(err) != errs.PayloadTooLarge {
		t.Errorf("unknown length: %v", err)
	}
	capped := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(bytes.NewReader(over)), MaxBodyBytes)
	if _, err := ReadBody(capped, -1); errs.KindOf(err) != errs.PayloadTooLarge {
		t.Errorf("capped reader: %v", err)
	}
	if _, err := ReadBody(nil, 0); errs.KindOf(err) != errs.InvalidArgument {
		t.Errorf("nil body: %v", err)
	}
	if raw, err := ReadBody(bytes.NewReader(over[:MaxBodyBytes]), MaxBodyBytes); err != nil || len(raw) != MaxBodyBytes {
		t.Errorf("exactly the limit: %d bytes, %v", len(raw), err)
	}
}

func TestCheckContentType(t *testing.T) {
	for _, c := range []struct {
		values []string
		ok     bool
	}{
		{[]string{"application/json"}, true},
		{[]string{"application/json; charset=UTF-8"}, true},
		{[]string{"application/json; charset=utf-16"}, false},
		{[]string{"application/json; x=1"}, false},
		{[]string{"text/plain"}, false},
		{[]string{""}, false},
		{nil, false},
		{[]string{"application/json", "application/json"}, false},
	} {
		err := CheckContentType(c.values)
		if (err == nil) != c.ok || (err != nil && errs.KindOf(err) != errs.UnsupportedMediaType) {
			t.Errorf("%q: %v", c.values, err)
		}
	}
}

// TestError: the contract's body for an error; an internal error's text and fields stay in
// the logs, an error that is not a contract error is internal.
func TestError(t *testing.T) {
	ctx := observe.WithRequestID(context.Background(), "rid-1")
	status, body := Error(ctx, errs.Invalid(map[string]string{"name": "is required"}))
	if status != 400 || body.Error != errs.InvalidArgument || body.Fields["name"] == "" || body.RequestID != "rid-1" || body.Message == "" {
		t.Errorf("invalid: %d %+v", status, body)
	}
	status, body = Error(ctx, &errs.Error{Kind: errs.Internal, Message: "pq: secret", Fields: map[string]string{"a": "b"}})
	if status != 500 || body.Message != InternalMessage || body.Fields != nil {
		t.Errorf("internal: %d %+v", status, body)
	}
	status, body = Error(context.Background(), errors.New("boom"))
	if status != 500 || body.Error != errs.Internal || body.Message != InternalMessage || body.RequestID != "" {
		t.Errorf("plain error: %d %+v", status, body)
	}
	if StatusOf(errs.Canceled) != StatusClientClosedRequest || StatusOf("nonsense") != 500 {
		t.Errorf("StatusOf")
	}
	for _, k := range []errs.Kind{errs.NotFound, errs.Conflict, errs.RateLimited, errs.PayloadTooLarge} {
		if KindOfStatus(StatusOf(k)) != k {
			t.Errorf("%s does not round-trip through its status", k)
		}
	}
}

func TestHeaderRules(t *testing.T) {
	for in, want := range map[string]int64{`"3"`: 3, `W/"3"`: 3, "3": 3, "*": 0, "": 0, " 7 ": 7} {
		if got, err := IfMatchVersion([]string{in}); err != nil || got != want {
			t.Errorf("If-Match %q: %d, %v", in, got, err)
		}
	}
	for _, in := range []string{`W/3`, `"+1"`, `"0"`, "x", `""`} {
		if _, err := IfMatchVersion([]string{in}); errs.KindOf(err) != errs.InvalidArgument || errs.As(err).Fields[HeaderIfMatch] == "" {
			t.Errorf("If-Match %q accepted: %v", in, err)
		}
	}
	if _, err := IfMatchVersion([]string{`"1"`, `"1"`}); errs.KindOf(err) != errs.InvalidArgument {
		t.Errorf("two If-Match accepted")
	}
	if v, err := IfMatchVersion([]string{ETag(42)}); err != nil || v != 42 {
		t.Errorf("ETag round trip: %d, %v", v, err)
	}
	if k, err := IdempotencyKey([]string{" k-1 "}); err != nil || k != "k-1" {
		t.Errorf("key: %q, %v", k, err)
	}
	for _, in := range [][]string{{strings.Repeat("k", MaxIdempotencyKey+1)}, {"é"}, {"a", "b"}} {
		if _, err := IdempotencyKey(in); errs.KindOf(err) != errs.InvalidArgument {
			t.Errorf("key %q accepted", in)
		}
	}
}

func TestTokenToContext(t *testing.T) {
	for in, want := range map[string]string{"Bearer abc.def": "abc.def", "bearer x": "x", "Basic abc": "", "Bearer caf\xe9": "", "": ""} {
		if got := authz.Token(TokenToContext(context.Background(), in)); got != want {
			t.Errorf("%q: token %q, want %q", in, got, want)
		}
	}
}

// TestLoginStepErrors: password_change_required and mfa_required are 401s carrying their
// challenge (enrol only with mfa_required); another kind never shows a challenge; a bare 401
// is always the plain unauthenticated, whatever order the status table is walked in.
func TestLoginStepErrors(t *testing.T) {
	status, body := Error(context.Background(), &errs.Error{Kind: errs.MFARequired, Message: "m", Challenge: "c1", Enrol: true})
	if status != 401 || body.Challenge != "c1" || !body.Enrol {
		t.Errorf("mfa_required: %d %+v", status, body)
	}
	status, body = Error(context.Background(), &errs.Error{Kind: errs.PasswordChangeRequired, Message: "m", Challenge: "c2", Enrol: true})
	if status != 401 || body.Challenge != "c2" || body.Enrol {
		t.Errorf("password_change_required: %d %+v", status, body)
	}
	for _, k := range []errs.Kind{errs.Unauthenticated, errs.Internal, errs.InvalidArgument} {
		if _, body := Error(context.Background(), &errs.Error{Kind: k, Message: "m", Challenge: "leak", Enrol: true}); body.Challenge != "" || body.Enrol {
			t.Errorf("%s shows a challenge: %+v", k, body)
		}
	}
	for range 200 {
		if k := KindOfStatus(403); k != errs.PermissionDenied {
			t.Errorf("a bare 403 is %s, want permission_denied", k)
		}
		if k := KindOfStatus(401); k != errs.Unauthenticated {
			t.Fatalf("a bare 401 read as %s", k)
		}
	}
}
