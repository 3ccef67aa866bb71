package httptransport

// Tests of the client plumbing every service's client shares (client.go, errors.go).

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
)

func TestClientTransportErrors(t *testing.T) {
	e := newEnv(t, Options{})
	e.stub.hook = func(ctx context.Context) { <-ctx.Done() }
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := e.client.Get(ctx, testID); !errors.Is(err, &errs.Error{Kind: errs.Timeout}) {
		t.Errorf("deadline: %v", err)
	}

	e.srv.Close()
	if _, err := e.client.Get(context.Background(), testID); !errors.Is(err, &errs.Error{Kind: errs.Unavailable}) {
		t.Errorf("closed server: %v", err)
	}
	if _, err := NewPatientClient("ftp://x", ClientOptions{}); err == nil {
		t.Error("ftp base URL accepted")
	}
	if _, err := NewPatientClient("/relative", ClientOptions{}); err == nil {
		t.Error("relative base URL accepted")
	}
}

func TestClientTokenOption(t *testing.T) {
	e := newEnv(t, Options{})
	c, err := NewPatientClient(e.srv.URL, ClientOptions{Token: func(context.Context) string { return "svc-token" }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	if _, _, ctx := e.stub.seen(); authz.Token(ctx) != "svc-token" {
		t.Errorf("token %q", authz.Token(ctx))
	}
}

func TestDecodeError(t *testing.T) {
	cases := []struct {
		name   string
		status int
		header http.Header
		body   string
		kind   errs.Kind
		retry  time.Duration
	}{
		{"word wins", 400, nil, `{"error":"conflict","message":"m"}`, errs.Conflict, 0},
		{"unknown word", 503, nil, `{"error":"teapot_exploded"}`, errs.Unavailable, 0},
		{"html proxy page", 502, nil, `<html>bad gateway</html>`, errs.Unavailable, 0},
		{"unlisted 4xx", 418, nil, ``, errs.InvalidArgument, 0},
		{"unlisted 5xx", 507, nil, ``, errs.Internal, 0},
		{"redirect", 302, nil, ``, errs.Internal, 0},
		{"429 seconds", 429, http.Header{"Retry-After": {"7"}}, `{"error":"rate_limited"}`, errs.RateLimited, 7 * time.Second},
		{"429 garbage", 429, http.Header{"Retry-After": {"soon"}}, ``, errs.RateLimited, time.Second},
		// Found by FuzzClientDecoders: 9227000000 s overflowed a Duration into a negative wait.
		{"429 huge", 429, http.Header{"Retry-After": {"9227000000"}}, ``, errs.RateLimited, math.MaxInt32 * time.Second},
		{"429 date", 429, http.Header{"Retry-After": {time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}, ``, errs.RateLimited, time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := DecodeError(&http.Response{StatusCode: c.status, Header: c.header, Body: io.NopCloser(strings.NewReader(c.body))})
			got := errs.As(err)
			if got.Kind != c.kind || got.Message == "" {
				t.Errorf("kind %q message %q, want %q", got.Kind, got.Message, c.kind)
			}
			if d := got.RetryAfter - c.retry; d < -2*time.Second || d > 2*time.Second {
				t.Errorf("RetryAfter %v, want %v", got.RetryAfter, c.retry)
			}
		})
	}
}

func TestNextPageToken(t *testing.T) {
	h := http.Header{"Link": {`</x?a=1>; rel="prev", </patients?q=a&pageToken=t%2B1>; rel="next"`}}
	if got := nextPageToken(h); got != "t+1" {
		t.Errorf("nextPageToken = %q", got)
	}
	if got := nextPageToken(http.Header{"Link": {`garbage`}}); got != "" {
		t.Errorf("nextPageToken(garbage) = %q", got)
	}
}
