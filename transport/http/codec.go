package httptransport

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/typed"
	"github.com/pms/pms/transport/wire"
)

// DecodeJSON reads the request body as one JSON object into a T with the contract's body
// rules (transport/wire): Content-Type application/json (415 otherwise), at most
// wire.MaxBodyBytes (413), valid UTF-8, no unknown fields, the right types (400 naming the
// field), and nothing after the object. Every failure is an *errs.Error of a 4xx kind, never
// a 500.
func DecodeJSON[T any](r *http.Request) (T, error) {
	if err := wire.CheckContentType(r.Header.Values("Content-Type")); err != nil {
		var zero T
		return zero, err
	}
	raw, err := wire.ReadBody(r.Body, r.ContentLength)
	if err != nil {
		var zero T
		return zero, err
	}
	return wire.DecodeBody[T](raw)
}

// jsonAppender is a body that encodes itself (patient.Patient and patient.Patients, the hot
// ones: package jsonw says why); WriteJSON writes it into a pooled buffer.
type jsonAppender interface{ AppendJSON([]byte) []byte }

// jsonBuffers keeps the buffers of self-encoding bodies (a 500-record search page is about
// 250 KB) for the next answer; a buffer grown past maxPooledJSON is left to the collector.
var jsonBuffers = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledJSON = 1 << 20

// WriteJSON writes body as JSON with status. It marshals before writing anything, so a body
// that cannot be encoded returns an error and leaves the response untouched (no partial
// write); a nil body writes the status alone. Errors writing to the connection are not
// returned: the client is gone and there is no one left to tell.
func WriteJSON(w http.ResponseWriter, status int, body any) error {
	if body == nil {
		w.WriteHeader(status)
		return nil
	}
	var b []byte
	if a, ok := body.(jsonAppender); ok {
		buf := jsonBuffers.Get().(*[]byte)
		b = append(a.AppendJSON((*buf)[:0]), '\n')
		defer func() {
			if cap(b) <= maxPooledJSON {
				*buf = b
				jsonBuffers.Put(buf)
			}
		}()
	} else {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return errs.Wrap(errs.Internal, wire.InternalMessage, err)
		}
		b = append(b, '\n')
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}

// EncodeJSON returns a go-kit response encoder writing the endpoint's response as JSON with
// status, for routes whose response needs no headers.
func EncodeJSON(status int) kithttp.EncodeResponseFunc {
	return func(_ context.Context, w http.ResponseWriter, response any) error {
		return WriteJSON(w, status, response)
	}
}

// Decoder adapts a typed request decoder to go-kit, so route code never sees interface{}.
func Decoder[Req any](f func(context.Context, *http.Request) (Req, error)) kithttp.DecodeRequestFunc {
	return func(ctx context.Context, r *http.Request) (any, error) {
		req, err := f(ctx, r)
		if err != nil {
			// Answered by the endpoint after authentication: 401/403 come before 400/413/415.
			return typed.Rejected{Err: err}, nil
		}
		return req, nil
	}
}

// Encoder adapts a typed response encoder to go-kit: f sets the response headers it needs
// and returns the status and the body to write as JSON (nil for none). This is the one place
// an endpoint's response is asserted to its type; a mismatch is a wiring bug, reported as
// internal rather than a panic.
func Encoder[Resp any](f func(context.Context, http.Header, Resp) (int, any)) kithttp.EncodeResponseFunc {
	return func(ctx context.Context, w http.ResponseWriter, response any) error {
		resp, ok := response.(Resp)
		if !ok {
			var want Resp
			return errs.Wrap(errs.Internal, wire.InternalMessage, fmt.Errorf("httptransport: endpoint returned %T, want %T", response, want))
		}
		status, body := f(ctx, w.Header(), resp)
		if raw, ok := body.(RawBody); ok {
			w.Header().Set("Content-Type", raw.ContentType)
			w.WriteHeader(status)
			_, _ = w.Write(raw.Data)
			return nil
		}
		return WriteJSON(w, status, body)
	}
}

// RawBody is a response body an encoder has already serialised in another format than JSON
// (the access log as CSV); Encoder writes it as is with its content type.
type RawBody struct {
	ContentType string
	Data        []byte
}

// Query is a request's query string checked against the route's allow-list. Its getters
// collect every problem so that Err reports all bad parameters at once, each under its name.
type Query struct {
	values url.Values
	fields errs.Fields
}

// ParseQuery parses r's query string and rejects (400) a malformed one, a parameter not in
// allowed, a parameter given twice, and a value that is not plain text: silently ignoring any
// of them would hand the caller results for a question they did not ask, and a value with
// invalid UTF-8 or a NUL cannot travel further (gRPC carries only valid UTF-8, PostgreSQL
// stores no NUL).
func ParseQuery(r *http.Request, allowed ...string) (*Query, error) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errs.Wrap(errs.InvalidArgument, "the query string is malformed", err)
	}
	q := &Query{values: values}
	for name, vs := range values {
		switch {
		case !contains(allowed, name):
			q.fields.Add(wire.EchoName(name), "unknown query parameter")
		case len(vs) > 1:
			q.fields.Add(name, "must be given at most once")
		case !plainText(vs[0]):
			q.fields.Add(name, plainTextMessage)
		}
	}
	if err := q.fields.Err(); err != nil {
		return nil, err
	}
	return q, nil
}

// plainTextMessage is the field error of a path id or query value that is not plainText.
const plainTextMessage = "must be valid UTF-8 without control characters"

// plainText reports whether s is valid UTF-8 without control characters: what a path id or a
// query value may hold (JSON bodies are checked for UTF-8 as a whole, and their fields by the
// services).
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Get returns the parameter's value, "" when absent.
func (q *Query) Get(name string) string { return q.values.Get(name) }

// Int returns the parameter as an integer in [lo, hi], or def when it is absent or empty;
// anything else records a field error.
func (q *Query) Int(name string, def, lo, hi int) int {
	s := q.values.Get(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		q.fields.Add(name, fmt.Sprintf("must be an integer from %d to %d", lo, hi))
		return def
	}
	return n
}

// Instant returns the parameter as a UTC instant: an RFC 3339 timestamp, or a YYYY-MM-DD date
// meaning its midnight (UTC) or, with endOfDay, the next midnight, so that a date given as the
// exclusive end of a range includes that whole day. Absent or empty gives the zero time.
//
// The instant must fall in years 0001 to 9999 once in UTC (an offset can push a timestamp
// out): outside them it has no RFC 3339 form, so a client could not send it back, gRPC
// refuses it, and SQLite, which compares instants as text, would order it wrongly. The end
// of day 9999-12-31 is after every instant there is, so it is no bound at all.
func (q *Query) Instant(name string, endOfDay bool) time.Time {
	s := q.values.Get(name)
	if s == "" {
		return time.Time{}
	}
	var t time.Time
	if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
		t = ts.UTC()
	} else if d, err := time.Parse(time.DateOnly, s); err == nil {
		t = d
		if endOfDay {
			if d.Year() == 9999 && d.Month() == 12 && d.Day() == 31 {
				return time.Time{}
			}
			t = d.AddDate(0, 0, 1)
		}
	} else {
		q.fields.Add(name, "must be an RFC 3339 instant or a YYYY-MM-DD date")
		return time.Time{}
	}
	if y := t.Year(); y < 1 || y > 9999 {
		q.fields.Add(name, "must be an instant from year 0001 to 9999 (UTC)")
		return time.Time{}
	}
	return t
}

// Fail records a field error found by the route itself (a range check across parameters).
func (q *Query) Fail(name, msg string) { q.fields.Add(name, msg) }

// Err returns every problem the getters found as one InvalidArgument error, or nil.
func (q *Query) Err() error { return q.fields.Err() }
