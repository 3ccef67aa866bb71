package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestPathsAnswerAlike is the bench's fairness: every path hop.sh measures carries the same
// request to an upstream and writes back the same bytes, so their CPU a request differs only by
// the hop. Real TCP and real gRPC, as the bench runs them.
func TestPathsAnswerAlike(t *testing.T) {
	up, err := upstreamHandler()
	if err != nil {
		t.Fatal(err)
	}
	direct := httptest.NewServer(up)
	defer direct.Close()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := newUpstreamServer(-1)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()

	gw, err := gatewayHandler(lis.Addr().String(), 2, -1)
	if err != nil {
		t.Fatal(err)
	}
	gateway := httptest.NewServer(gw)
	defer gateway.Close()
	px, err := proxyHandler(direct.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(px)
	defer proxy.Close()

	get := func(url string) (int, string, string) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, res.Header.Get("Content-Type"), string(b)
	}
	const id = "7f3c2a8e-6d1b-4c5e-9a0f-2b8d4e6c1a37"
	_, _, want := get(direct.URL + "/patients/" + id)
	if want == "" || want[0] != '{' {
		t.Fatalf("direct answered %q", want)
	}
	// Two calls through the gateway (its two client connections are taken in turn) and one
	// through the reverse proxy.
	for _, url := range []string{gateway.URL + "/api/patients/" + id, gateway.URL + "/api/patients/" + id, proxy.URL + "/api/patients/" + id} {
		code, ct, body := get(url)
		if code != http.StatusOK || ct != "application/json" || body != want {
			t.Errorf("%s: %d %q %q, want 200 application/json %q", url, code, ct, body, want)
		}
	}
	if code, _, _ := get(gateway.URL + "/elsewhere"); code != http.StatusNotFound {
		t.Errorf("the gateway answered %d off its one route, want 404", code)
	}
	g.Stop()
	if code, _, _ := get(gateway.URL + "/api/patients/" + id); code != http.StatusBadGateway {
		t.Errorf("the gateway answered %d with its upstream stopped, want 502", code)
	}
}
