package cluster

import (
	"bufio"
	"bytes"
	"context"
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
	"time"
)

// HangUp is one request a client sends and abandons before the answer.
type HangUp struct {
	Method, Path, Body string
}

// HangUps sends every request to the HTTP server at base (http://host:port) on its own TCP
// connection, with the bearer token, and closes the connection at a random moment within
// maxDelay of sending it, never reading the answer: what wrk does at the end of a run and a
// browser does when a tab closes. It returns once every connection is closed. The delays are
// the stimulus (hang up mid-request), not synchronisation.
func HangUps(base, token string, reqs []HangUp, maxDelay time.Duration) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(reqs))
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
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
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Gauge reads the value of one series (name with its labels, as /metrics prints it, such as
// `pms_gateway_breaker_state{upstream="patient"}`) from the admin server at admin
// (host:port); a series that is absent reads as 0.
func Gauge(admin, series string) (float64, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, sc.Err()
}

// Sum adds every series of the metric name whose labels contain all of labels (each
// `key="value"`), such as the requests answered with one code over every method.
func Sum(admin, name string, labels ...string) (float64, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var sum float64
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(line[:end], l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, sc.Err()
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
		resp, err := http.DefaultClient.Do(req)
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
