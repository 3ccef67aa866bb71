package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// HangUp is one request a client sends and abandons before the answer.
type HangUp struct {
	Method, Path, Body string
}

// HangUps sends every request to the HTTP server at base (http://host:port, or https:// with
// a certificate of the clusters' CA) on its own connection, with the bearer token, and closes
// the connection at a random moment within maxDelay of sending it, never reading the answer:
// what wrk does at the end of a run and a browser does when a tab closes. It returns once
// every connection is closed. The delays are the stimulus (hang up mid-request), not
// synchronisation.
func HangUps(base, token string, reqs []HangUp, maxDelay time.Duration) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	dial := func() (net.Conn, error) { return dialer.Dial("tcp", u.Host) }
	if u.Scheme == "https" {
		cfg, err := TLSConfig()
		if err != nil {
			return err
		}
		// The handshake completes before the request is written; the hang-up is then a
		// close_notify and a FIN mid-request, as a browser's.
		dial = func() (net.Conn, error) { return tls.DialWithDialer(dialer, "tcp", u.Host, cfg) }
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(reqs))
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := dial()
			if err != nil {
				errc <- err
				return
			}
			defer conn.Close()
			var b bytes.Buffer
			fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nX-Request-ID: hangup%026d\r\n", r.Method, r.Path, u.Host, token, i)
			if r.Body != "" {
				fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(r.Body))
			}
			b.WriteString("\r\n" + r.Body)
			if _, err := conn.Write(b.Bytes()); err != nil {
				errc <- err
				return
			}
			time.Sleep(time.Duration(rand.Int64N(int64(maxDelay) + 1))) // the moment this client gives up
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// client is the helpers' HTTP client: no deadline of its own (callers pass contexts), the
// clusters' CA trusted.
var client = &http.Client{Transport: HTTPTransport()}

// Do sends one request to base+path with the token and returns the status and body.
func Do(ctx context.Context, base, token, method, path, body string) (int, []byte, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, r)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// scrape calls line for every line of the /metrics page of the admin server at admin: its
// base URL (https://host:port, as Cluster.URL gives it), or host:port for plain HTTP.
func scrape(admin string, line func(string) error) error {
	if !strings.Contains(admin, "://") {
		admin = "http://" + admin
	}
	resp, err := client.Get(admin + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if err := line(sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// Gauge reads the value of one series (name with its labels, as /metrics prints it, such as
// `pms_gateway_breaker_state{upstream="patient"}`) from the admin server at admin (its base
// URL, or host:port for plain HTTP); a series that is absent reads as 0.
func Gauge(admin, series string) (float64, error) {
	var v float64
	err := scrape(admin, func(line string) (err error) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err = strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
		return err
	})
	return v, err
}

// Sum adds every series of the metric name whose labels contain all of labels (each
// `key="value"`), such as the requests answered with one code over every method.
func Sum(admin, name string, labels ...string) (float64, error) {
	var sum float64
	err := scrape(admin, func(line string) error {
		end := strings.LastIndexByte(line, '}')
		if !strings.HasPrefix(line, name+"{") || end < 0 {
			return nil
		}
		for _, l := range labels {
			if !strings.Contains(line[:end], l) {
				return nil
			}
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		sum += v
		return err
	})
	return sum, err
}

// UnauditedPatients returns the ids of the patients that exist (read through the gateway at
// base with an admin token) but have no successful create entry in the patient audit log: an
// acknowledged change left unaudited.
func UnauditedPatients(ctx context.Context, base, token string) ([]string, error) {
	ids := map[string]bool{}
	path := "/api/patients?limit=500"
	for path != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		var page []struct{ ID string }
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &page) != nil {
			return nil, fmt.Errorf("list patients: %d %s", resp.StatusCode, b)
		}
		for _, p := range page {
			ids[p.ID] = true
		}
		path = ""
		if link := resp.Header.Get("Link"); strings.HasPrefix(link, "</api/") {
			path = strings.TrimPrefix(strings.Split(link, ">")[0], "<")
		}
	}
	code, b, err := Do(ctx, base, token, http.MethodGet, "/api/audit?limit=1000", "")
	if err != nil {
		return nil, err
	}
	var entries []struct{ Action, PatientID, Outcome string }
	if code != http.StatusOK || json.Unmarshal(b, &entries) != nil {
		return nil, fmt.Errorf("read the audit log: %d %s", code, b)
	}
	if len(entries) == 1000 {
		return nil, fmt.Errorf("the audit log has over 1000 entries; page it")
	}
	for _, e := range entries {
		if e.Action == "create" && e.Outcome == "success" {
			delete(ids, e.PatientID)
		}
	}
	var out []string
	for id := range ids {
		out = append(out, id)
	}
	return out, nil
}

// HangUpMix is the barrage of issue 13: n requests through the gateway, in turn a read, a
// search over every row and a create (and, with billing, a read of the patient's billing
// account and invoices, which the patient service asks billing for), whose clients all hang up
// mid-request. tag keeps the created emails apart between runs.
func HangUpMix(n int, ids []string, tag string, billing bool) []HangUp {
	kinds := 3
	if billing {
		kinds = 5
	}
	var out []HangUp
	for i := range n {
		id := ids[i%len(ids)]
		switch i % kinds {
		case 0:
			out = append(out, HangUp{Method: "GET", Path: "/api/patients/" + id})
		case 1:
			out = append(out, HangUp{Method: "GET", Path: "/api/patients?q=e&limit=500"})
		case 2:
			out = append(out, HangUp{Method: "POST", Path: "/api/patients", Body: fmt.Sprintf(
				`{"name":"Gone %d","email":"gone%d-%s@example.org","address":"1 Main St","dateOfBirth":"1990-12-10"}`, i, i, tag)})
		case 3:
			out = append(out, HangUp{Method: "GET", Path: "/api/patients/" + id + "/billing-account"})
		default:
			out = append(out, HangUp{Method: "GET", Path: "/api/patients/" + id + "/invoices"})
		}
	}
	return out
}

// SeedPatients creates n patients through the gateway at gw with 8 clients and returns their
// ids.
func SeedPatients(t testing.TB, gw, token string, n int) []string {
	t.Helper()
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				code, b, err := Do(context.Background(), gw, token, "POST", "/api/patients", fmt.Sprintf(
					`{"name":"Seed Person %d","email":"seed%d@example.org","address":"%d Elm Street","dateOfBirth":"1980-01-02"}`, i, i, i))
				var p struct{ ID string }
				if err != nil || code != 201 || json.Unmarshal(b, &p) != nil {
					t.Errorf("seed %d: %d %v %s", i, code, err, b)
					return
				}
				mu.Lock()
				ids = append(ids, p.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return ids
}

// CheckAfterHangUps is what must hold once clients hung up (issue 13): the next 100 ordinary
// requests through the gateway at gw all answer 2xx (with billing, a fifth of them read billing
// through the patient service), every breaker gauge named in breakers (admin server → series)
// reads 0 (closed), the gateway (admin server gwAdmin) recorded some requests as canceled and
// none as unavailable, and every patient that exists has its create entry in the audit log.
// Admin servers are named as Gauge takes them: a base URL, or host:port for plain HTTP.
func CheckAfterHangUps(t testing.TB, gw, gwAdmin, token string, ids []string, billing bool, breakers map[string]string) {
	t.Helper()
	ctx := context.Background()
	for i := range 100 {
		method, path, body := "GET", "/api/patients/"+ids[i%len(ids)], ""
		switch {
		case i%4 == 3:
			method, path, body = "POST", "/api/patients", fmt.Sprintf(
				`{"name":"After %d","email":"after%d-%d@example.org","address":"1 Main St","dateOfBirth":"1990-12-10"}`, i, i, time.Now().UnixNano())
		case i%4 == 2:
			path = "/api/patients?q=e&limit=50"
		case i%4 == 1 && billing:
			path += "/billing-account"
		}
		code, b, err := Do(ctx, gw, token, method, path, body)
		if err != nil || code/100 != 2 {
			t.Fatalf("%s %s after the hang-ups: %d %v %s (a caller gone must not count against an upstream)", method, path, code, err, b)
		}
	}
	for admin, series := range breakers {
		if v, err := Gauge(admin, series); err != nil || v != 0 {
			t.Fatalf("%s = %v, %v after the hang-ups; want 0 (closed)", series, v, err)
		}
	}
	failed, err := Sum(gwAdmin, "pms_gateway_request_duration_seconds_count", `code="unavailable"`)
	if err != nil || failed != 0 {
		t.Fatalf("the gateway answered %v requests unavailable (%v); want 0", failed, err)
	}
	canceled, err := Sum(gwAdmin, "pms_gateway_request_duration_seconds_count", `code="canceled"`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gateway requests recorded as canceled: %v", canceled)
	if canceled == 0 {
		t.Fatal("no request was recorded as canceled: the clients never hung up mid-request, so the test proved nothing")
	}
	// Creates whose callers left may still be finishing: poll until every patient is audited.
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing, err := UnauditedPatients(ctx, gw, token)
		if err == nil && len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("patients without their create audit entry: %v (%v)", missing, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval of a deadline-bound wait
	}
}
