// Package wire holds the rules every PMS transport that carries the REST contract's JSON
// shares, whatever carries the bytes: the request body rules (one JSON object in UTF-8, at
// most 1 MiB, no unknown fields, content type application/json), the contract's error body
// and its status table, the header rules (If-Match, Idempotency-Key) and putting a caller's
// bearer token into the context. transport/http applies them to HTTP requests and
// transport/kafka to command messages, so a body or a header is judged alike on both and
// neither transport needs the other. It is not a transport: it serves nothing, holds no
// connection, and takes plain values (bytes, header values), never a request.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pms/pms/pkg/platform/errs"
)

// MaxBodyBytes is the largest request body (or command message value) accepted (API.md: over
// 1 MiB → 413, payload_too_large).
const MaxBodyBytes = 1 << 20

// ContentTypeJSON is the one media type a request body may have.
const ContentTypeJSON = "application/json"

// maxEchoedName bounds a caller-chosen name (an unknown field or query parameter) echoed
// back in an error's fields, so a hostile name cannot blow up the error body.
const maxEchoedName = 64

// CheckContentType judges the Content-Type values of a request with a body: exactly one,
// application/json with no parameter but a UTF-8 charset (JSON is UTF-8, RFC 8259, so any
// other charset is a body we would misread). Anything else is unsupported_media_type; two
// types for one body leave in doubt which the caller meant.
func CheckContentType(values []string) error {
	if len(values) > 1 {
		return errs.New(errs.UnsupportedMediaType, "the request must have one Content-Type, application/json")
	}
	ct := ""
	if len(values) == 1 {
		ct = values[0]
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != ContentTypeJSON {
		return errs.New(errs.UnsupportedMediaType, "the request body must be application/json")
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return errs.New(errs.UnsupportedMediaType, "the request body must be application/json in UTF-8")
		}
	}
	return nil
}

// ReadBody reads a request body of declared length (-1 when unknown) and returns its bytes,
// refusing more than MaxBodyBytes (payload_too_large) before reading when the length says so
// and while reading otherwise. A nil body is an empty one (invalid_argument). A reader that
// is itself capped (net/http's MaxBytesReader) counts as too large when its cap is hit.
func ReadBody(body io.Reader, length int64) ([]byte, error) {
	if length > MaxBodyBytes {
		return nil, tooLarge()
	}
	if body == nil {
		return nil, errs.New(errs.InvalidArgument, "the request body is empty")
	}
	raw, err := io.ReadAll(io.LimitReader(body, MaxBodyBytes+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge()
		}
		return nil, errs.Wrap(errs.InvalidArgument, "the request body could not be read", err)
	}
	if len(raw) > MaxBodyBytes {
		return nil, tooLarge()
	}
	return raw, nil
}

// DecodeBody decodes raw, a whole request body, into a T with the contract's rules: at most
// MaxBodyBytes (413), exactly one JSON object, valid UTF-8, no unknown fields, the right
// types (400 naming the field), and nothing after the object. Every failure is an
// *errs.Error of a 4xx kind, never a 500.
func DecodeBody[T any](raw []byte) (T, error) {
	var v T
	if len(raw) > MaxBodyBytes {
		return v, tooLarge()
	}
	if err := unmarshalObject(raw, &v); err != nil {
		return v, err
	}
	return v, nil
}

func tooLarge() error {
	return errs.Newf(errs.PayloadTooLarge, "the request body is larger than %d bytes", MaxBodyBytes)
}

// unmarshalObject decodes raw, which must hold exactly one JSON object, into v, turning every
// failure into a caller-facing InvalidArgument error.
func unmarshalObject(raw []byte, v any) error {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return errs.New(errs.InvalidArgument, "the request body is empty")
	case trimmed[0] != '{':
		return errs.New(errs.InvalidArgument, "the request body must be a JSON object")
	case !utf8.Valid(raw):
		return errs.New(errs.InvalidArgument, "the request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errs.New(errs.InvalidArgument, "the request body has data after the JSON object")
	}
	return nil
}

// jsonError translates an encoding/json error into the contract's words, naming the field
// where json can tell which one it was.
func jsonError(err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		return errs.Wrap(errs.InvalidArgument, fmt.Sprintf("the request body is not valid JSON (at byte %d)", syntax.Offset), err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errs.Wrap(errs.InvalidArgument, "the request body is truncated JSON", err)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return errs.Wrap(errs.InvalidArgument, "the request body must be a JSON object", err)
		}
		e := errs.Invalid(map[string]string{EchoName(documentPath(typ.Field)): "must be " + jsonTypeName(typ.Type)})
		e.Err = err
		return e
	}
	// encoding/json reports unknown fields only by message.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if n, uerr := strconv.Unquote(name); uerr == nil {
			name = n
		}
		e := errs.Invalid(map[string]string{EchoName(name): "unknown field"})
		e.Err = err
		return e
	}
	return errs.Wrap(errs.InvalidArgument, "the request body is not valid JSON", err)
}

// documentPath drops from encoding/json's field path the Go names of embedded structs, which
// it includes although the document has no such level. JSON names in the contract are
// camelCase, so a segment before the last that starts with an upper-case letter is such a
// Go name.
func documentPath(path string) string {
	segs := strings.Split(path, ".")
	out := segs[:0]
	for i, s := range segs {
		if i == len(segs)-1 || s == "" || !unicode.IsUpper(rune(s[0])) {
			out = append(out, s)
		}
	}
	return strings.Join(out, ".")
}

// jsonTypeName says in JSON's words what a Go type expects.
func jsonTypeName(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "a valid value"
	}
	if t == reflect.TypeFor[time.Time]() {
		return "an RFC 3339 timestamp string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer in range"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number in range"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a valid value"
}

// EchoName makes a caller-chosen name (an unknown field, a query parameter) safe to send back
// in an error's fields: valid UTF-8 and short.
func EchoName(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxEchoedName {
		return s
	}
	cut := maxEchoedName
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
