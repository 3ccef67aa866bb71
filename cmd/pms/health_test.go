package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthCommand: `pms health` exits 0 only when /readyz answers 200; a 503, a refused
// connection, a wrong path and bad flags all fail.
func TestHealthCommand(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	run := func(args ...string) error {
		var out, errOut bytes.Buffer
		return dispatch(context.Background(), append([]string{"health"}, args...), &out, &errOut)
	}
	if err := run("--addr", addr); err != nil {
		t.Fatalf("ready server: %v", err)
	}
	ready = false
	if err := run("--addr", addr); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503 server: %v", err)
	}
	// A port nobody listens on: bind one, close it, check it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if err := run("--addr", closed); err == nil {
		t.Fatal("closed port: no error")
	}
	for _, bad := range [][]string{{"--timeout", "0s"}, {"--timeout", "x"}, {"--nope"}, {"extra"}, {"--addr", "a b/%"}} {
		if err := run(append([]string{"--addr", addr}, bad...)...); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	t.Setenv("PMS_HEALTH_ADDR", addr)
	ready = true
	if err := run(); err != nil {
		t.Fatalf("address from PMS_HEALTH_ADDR: %v", err)
	}
}
