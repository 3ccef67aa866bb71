package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// closedHelperEnv makes the test binary, re-run inside a network namespace, play the
// platform's part of TestClosedByDefault.
const closedHelperEnv = "PMS_CLOSED_BY_DEFAULT_HELPER"

// TestClosedByDefault: `pms all` with no flags listens on loopback only (every service's
// HTTP, gRPC and admin port, and the embedded broker) and serves no /debug/pprof/; with
// --pprof, pprof answers on the loopback admin port. It runs in a network namespace of its
// own (unshare -n, with only lo up), so the contract's default ports are free whatever else
// runs on this machine, and the listening sockets read from /proc/net are the platform's.
func TestClosedByDefault(t *testing.T) {
	if os.Getenv(closedHelperEnv) == "1" {
		closedHelper(t)
		return
	}
	if testing.Short() {
		t.Skip("starts pms all twice")
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (util-linux, iproute2): %v", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-n", "--", "sh", "-c",
		`ip link set lo up && exec "$0" -test.run='^TestClosedByDefault$' -test.v`, os.Args[0])
	cmd.Env = append(os.Environ(), closedHelperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestClosedByDefault") {
		t.Fatalf("in a network namespace of its own: %v\n%s", err, tail(string(out), 60))
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "listening sockets:") {
			t.Log(strings.TrimSpace(l))
		}
	}
}

// closedHelper is TestClosedByDefault inside the namespace.
func closedHelper(t *testing.T) {
	for _, pprof := range []bool{false, true} {
		t.Run(fmt.Sprintf("pprof=%v", pprof), func(t *testing.T) {
			args := []string{"all", "--data-dir=" + t.TempDir(), "--log-level=error"}
			if pprof {
				args = append(args, "--pprof")
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- dispatch(ctx, args, io.Discard, io.Discard) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("pms all: %v", err)
				}
			}()
			deadline := time.Now().Add(90 * time.Second)
			for !ready("http://127.0.0.1:4104/readyz") {
				select {
				case err := <-done:
					t.Fatalf("pms all stopped: %v", err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("the gateway's admin port never became ready")
				}
				time.Sleep(100 * time.Millisecond)
			}
			socks, err := listening()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("listening sockets: %v", socks)
			if len(socks) < 16 { // 5 services × (HTTP, admin) + 4 gRPC + the broker
				t.Errorf("only %d listening sockets: %v", len(socks), socks)
			}
			for _, s := range socks {
				if !strings.HasPrefix(s, "127.") && !strings.HasPrefix(s, "[::1]") {
					t.Errorf("listening off loopback: %s", s)
				}
			}
			want := http.StatusNotFound
			if pprof {
				want = http.StatusOK
			}
			for _, admin := range []string{"4100", "4101", "4102", "4104", "4105"} {
				if code := httpStatus("http://127.0.0.1:" + admin + "/debug/pprof/"); code != want {
					t.Errorf("admin :%s /debug/pprof/ = %d, want %d", admin, code, want)
				}
			}
		})
	}
}

// listening returns the local address of every listening TCP socket of this network
// namespace, from /proc/net/tcp and tcp6.
func listening() ([]string, error) {
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		file, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(file)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			addr, err := procAddr(fields[1])
			if err != nil {
				_ = file.Close()
				return nil, err
			}
			out = append(out, addr)
		}
		_ = file.Close()
	}
	return out, nil
}

// procAddr decodes /proc/net/tcp's "0100007F:1F90" (IPv4, or IPv6 in 32 hex digits: 32-bit
// words in host order, little-endian here) into "127.0.0.1:8080".
func procAddr(s string) (string, error) {
	host, port, ok := strings.Cut(s, ":")
	var p int
	if _, err := fmt.Sscanf(port, "%X", &p); !ok || err != nil {
		return "", fmt.Errorf("bad address %q", s)
	}
	b := make([]byte, len(host)/2)
	for i := range b {
		if _, err := fmt.Sscanf(host[2*i:2*i+2], "%02X", &b[i]); err != nil {
			return "", fmt.Errorf("bad address %q", s)
		}
	}
	for w := 0; w+4 <= len(b); w += 4 { // each 32-bit word is little-endian
		b[w], b[w+1], b[w+2], b[w+3] = b[w+3], b[w+2], b[w+1], b[w]
	}
	switch len(b) {
	case 4:
		return fmt.Sprintf("%d.%d.%d.%d:%d", b[0], b[1], b[2], b[3], p), nil
	case 16:
		var parts []string
		for i := 0; i < 16; i += 2 {
			parts = append(parts, fmt.Sprintf("%x", int(b[i])<<8|int(b[i+1])))
		}
		h := strings.Join(parts, ":")
		if h == "0:0:0:0:0:0:0:1" {
			h = "::1"
		}
		return fmt.Sprintf("[%s]:%d", h, p), nil
	}
	return "", errors.New("bad address " + s)
}

func ready(url string) bool { return httpStatus(url) == http.StatusOK }

func httpStatus(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestOffLoopbackNeedsConsent: a listener off loopback in plain text, or a JWKS fetched in
// plain text from another machine, stops the start with a message saying what to do; with
// --insecure-plaintext the service starts, and its admin port counts such listeners in
// pms_insecure_plaintext_listeners.
func TestOffLoopbackNeedsConsent(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "p.db")
	args := patientArgs(t, url)
	for i, a := range args {
		if a == "--http-addr=127.0.0.1:0" {
			args[i] = "--http-addr=0.0.0.0:0"
		}
	}
	err := dispatch(context.Background(), args, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "off loopback without TLS") || !strings.Contains(err.Error(), "--insecure-plaintext") {
		t.Fatalf("0.0.0.0 without consent: %v", err)
	}
	jwks := append(patientArgs(t, url), "--auth-jwks-url=http://auth.example:4005/.well-known/jwks.json")
	if err := dispatch(context.Background(), jwks, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "plain http off loopback") {
		t.Fatalf("plain-text JWKS off loopback: %v", err)
	}
	a, stop := startPMS(t, patientAddrs, append(args, "--insecure-plaintext")...)
	defer stop()
	if body := get(t, "http://"+a["patient/admin"]+"/metrics"); !strings.Contains(body, "pms_insecure_plaintext_listeners 1") {
		t.Fatalf("metrics lack pms_insecure_plaintext_listeners 1:\n%.600s", body)
	}
}
