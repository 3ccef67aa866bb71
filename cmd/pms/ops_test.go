package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"
)

// opsTool finds a Debian tool the ops tests run (promtool, prometheus, file); without it
// the test skips with a message, except under CI=true, where .ci/run installs it.
func opsTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		pkg := "prometheus"
		if name == "amtool" {
			pkg = "prometheus-alertmanager"
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (apt-get install %s)", name, pkg)
		}
		t.Skipf("%s is not installed (apt-get install %s): skipped", name, pkg)
	}
	return p
}

// TestPromtool: both Prometheus configurations and the rules pass promtool's checks (rule
// files resolved relative to each config, lint included), the rules' unit tests pass
// (ops/prometheus/rules_test.yml fires every alert), every alert carries a runbook_url to its
// section of docs/operations.md and has a unit test, and amtool accepts the Alertmanager
// configuration.
func TestPromtool(t *testing.T) {
	promtool := opsTool(t, "promtool")
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml", "ops/prometheus/local.yml"},
		{"check", "rules", "ops/prometheus/rules.yml"},
		{"test", "rules", "ops/prometheus/rules_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string
				Annotations map[string]string
			}
		}
	}
	rb, err := os.ReadFile(filepath.Join(repoRoot, "ops", "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(rb, &rules); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(repoRoot, "ops", "prometheus", "rules_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if want := "docs/operations.md#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !bytes.Contains(tests, []byte("alertname: "+r.Alert+"\n")) {
				t.Errorf("%s has no promtool unit test in ops/prometheus/rules_test.yml", r.Alert)
			}
		}
	}
	if alerts < 13 {
		t.Errorf("%d alerts in rules.yml; want at least 13", alerts)
	}
	amtool := opsTool(t, "amtool")
	cmd := exec.Command(amtool, "check-config", "ops/alertmanager/alertmanager.yml")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("amtool check-config: %v\n%s", err, out)
	}
}

// TestImageBuildStatic: the image's build command (taken from ops/Dockerfile) gives a static
// binary, so it runs on distroless/static with no libc.
func TestImageBuildStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	fileTool := opsTool(t, "file")
	df, err := os.ReadFile(filepath.Join(repoRoot, "ops", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	const build = `CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/pms ./cmd/pms`
	if !bytes.Contains(df, []byte(build)) {
		t.Fatalf("ops/Dockerfile no longer builds with %q: update this test with it", build)
	}
	if !regexp.MustCompile(`(?m)^USER 65532`).Match(df) || !bytes.Contains(df, []byte(`ENTRYPOINT ["pms"]`)) ||
		!bytes.Contains(df, []byte(`HEALTHCHECK`)) {
		t.Error("ops/Dockerfile: want a non-root USER, ENTRYPOINT [\"pms\"] and a HEALTHCHECK")
	}
	out := filepath.Join(t.TempDir(), "pms")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/pms")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	b, err := exec.Command(fileTool, out).CombinedOutput()
	if err != nil {
		t.Fatalf("file: %v %s", err, b)
	}
	if !strings.Contains(string(b), "statically linked") {
		t.Fatalf("not a static binary: %s", b)
	}
}

// jobs are the Prometheus jobs, one per service, and the `pms all` admin listener each scrapes.
var jobs = map[string]string{"auth": "auth/admin", "patient": "patient/admin", "billing": "billing/admin",
	"analytics": "analytics/admin", "gateway": "gateway/admin"}

// TestOpsMetricsAndPrometheus runs `pms all`, sends traffic through the gateway (every
// service serves some), then checks that every metric the rules and the Grafana dashboard use
// exists in the services' /metrics, and that a real Prometheus with ops/prometheus/local.yml
// (targets rewritten to the bound ports) scrapes all five jobs, sees the request histograms
// and evaluates the recording rules.
func TestOpsMetricsAndPrometheus(t *testing.T) {
	a, _ := startPMS(t, allAddrs, allArgs(t, "")...)
	gw := "http://" + a["gateway/http"]
	for job, l := range jobs {
		var out bytes.Buffer
		if err := dispatch(context.Background(), []string{"health", "--addr", a[l]}, &out, io.Discard); err != nil {
			t.Fatalf("pms health %s: %v", job, err)
		}
	}
	resp, b := call(t, "POST", gw+"/auth/login", "", `{"email":"`+allAdminEmail+`","password":"`+adminPassword+`"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("login through the gateway: %d %s", resp.StatusCode, b)
	}
	var login struct{ Token string }
	if err := json.Unmarshal(b, &login); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		body := fmt.Sprintf(`{"name":"Ops %d","email":"ops%d@example.org","address":"1 Main St","dateOfBirth":"1990-12-10"}`, i, i)
		if resp, b := call(t, "POST", gw+"/api/patients", login.Token, body); resp.StatusCode != 201 {
			t.Fatalf("create: %d %s", resp.StatusCode, b)
		}
	}
	for _, path := range []string{"/api/patients", "/api/billing/invoices", "/api/analytics/summary", "/api/users"} {
		if resp, b := call(t, "GET", gw+path, login.Token, ""); resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}

	// The Kafka-side series appear once billing and analytics consumed the creates.
	var exposed map[string]bool
	deadline := time.Now().Add(60 * time.Second)
	for {
		exposed = map[string]bool{}
		for _, l := range jobs {
			for n := range metricNames(t, "http://"+a[l]+"/metrics") {
				exposed[n] = true
			}
		}
		if exposed["pms_analytics_fold_latency_seconds_bucket"] && exposed["pms_billing_kafka_consumer_lag"] &&
			exposed["pms_analytics_kafka_consumer_lag"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("analytics and billing did not consume the patient events within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Run("metric names", func(t *testing.T) { checkMetricNames(t, exposed) })
	t.Run("prometheus", func(t *testing.T) { checkPrometheus(t, a) })
}

// metricNames returns the sample names in a Prometheus text exposition (histograms give
// their _bucket, _sum and _count names).
func metricNames(t *testing.T, u string) map[string]bool {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	ranges     = regexp.MustCompile(`\[[^\]]*\]`)
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// exprNames returns the metric names a PromQL expression uses: pms_* names and recorded
// (colon) names; label values, range durations and Grafana variables are dropped first.
func exprNames(expr string) []string {
	expr = ranges.ReplaceAllString(quoted.ReplaceAllString(expr, `""`), "")
	var out []string
	for _, id := range identifier.FindAllString(expr, -1) {
		if strings.HasPrefix(id, "pms_") || strings.Contains(id, ":") {
			out = append(out, id)
		}
	}
	return out
}

// notByDefault are metric names the rules use that `pms all` on its defaults does not expose:
// the backup scheduler's (pms all --backup-every, issue 23) appears only when it is on.
var notByDefault = map[string]bool{"pms_backup_last_success_timestamp_seconds": true}

// checkMetricNames: every name used by rules.yml and the dashboard is exposed by a service or
// recorded by a rule; a renamed metric fails here.
func checkMetricNames(t *testing.T, exposed map[string]bool) {
	var rules struct {
		Groups []struct {
			Rules []struct{ Record, Alert, Expr string }
		}
	}
	rb, err := os.ReadFile(filepath.Join(repoRoot, "ops", "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(rb, &rules); err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			exprs = append(exprs, "rules.yml "+r.Record+r.Alert+"\x00"+r.Expr)
		}
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	db, err := os.ReadFile(filepath.Join(repoRoot, "ops", "grafana", "dashboards", "pms.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(db, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, "dashboard "+p.Title+"\x00"+tg.Expr)
		}
	}
	checked := map[string]bool{}
	for _, e := range exprs {
		where, expr, _ := strings.Cut(e, "\x00")
		if strings.TrimSpace(expr) == "" {
			t.Errorf("%s: empty expression", where)
		}
		for _, n := range exprNames(expr) {
			checked[n] = true
			if strings.Contains(n, ":") && !recorded[n] {
				t.Errorf("%s uses %s, which no rule records", where, n)
			}
			if !strings.Contains(n, ":") && !exposed[n] && !notByDefault[n] {
				t.Errorf("%s uses %s, which no service exposes", where, n)
			}
		}
	}
	// Every service's request histogram, the breakers, the patients, the outboxes, the
	// consumer lag and the event latency must be among them.
	for _, n := range []string{"pms_auth_request_duration_seconds_bucket", "pms_patient_request_duration_seconds_count",
		"pms_billing_request_duration_seconds_bucket", "pms_analytics_request_duration_seconds_bucket",
		"pms_gateway_request_duration_seconds_bucket", "pms_gateway_breaker_state", "pms_patient_changes_total",
		"pms_patient_outbox_backlog", "pms_billing_kafka_consumer_lag", "pms_analytics_fold_latency_seconds_bucket"} {
		if !checked[n] {
			t.Errorf("neither the rules nor the dashboard use %s", n)
		}
	}
	t.Logf("%d metric names checked against /metrics and the recording rules", len(checked))
}

// checkPrometheus starts a real prometheus on a temporary folder and a free port with a copy
// of local.yml whose targets are `pms all`'s bound admin ports and whose intervals are 1 s.
func checkPrometheus(t *testing.T, a map[string]string) {
	bin := opsTool(t, "prometheus")
	src, err := os.ReadFile(filepath.Join(repoRoot, "ops", "prometheus", "local.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(src)
	defaults := map[string]string{"auth": "4105", "patient": "4100", "billing": "4101", "analytics": "4102", "gateway": "4104"}
	for job, port := range defaults {
		old := `"localhost:` + port + `"`
		if strings.Count(cfg, old) != 1 {
			t.Fatalf("local.yml: want one target %s for %s", old, job)
		}
		cfg = strings.Replace(cfg, old, `"`+a[jobs[job]]+`"`, 1)
	}
	rules, err := filepath.Abs(filepath.Join(repoRoot, "ops", "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for old, repl := range map[string]string{"scrape_interval: 15s": "scrape_interval: 1s",
		"scrape_timeout: 10s": "scrape_timeout: 1s", "evaluation_interval: 15s": "evaluation_interval: 1s",
		"  - rules.yml": "  - " + rules} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("local.yml has no %q to rewrite for the test", old)
		}
		cfg = strings.Replace(cfg, old, repl, 1)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	// query runs an instant query and returns the value of each series by its job label.
	query := func(q string) (map[string]string, error) {
		resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Data   struct {
				Result []struct {
					Metric map[string]string
					Value  [2]any
				}
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
			return nil, fmt.Errorf("query %s: %v (%s)", q, err, r.Status)
		}
		out := map[string]string{}
		for _, s := range r.Data.Result {
			out[s.Metric["job"]] = fmt.Sprint(s.Value[1])
		}
		return out, nil
	}
	// until polls q until every job has a series for which ok holds.
	until := func(q string, ok func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		var got map[string]string
		var err error
		for time.Now().Before(deadline) {
			select {
			case err := <-exited:
				t.Fatalf("prometheus exited: %v\n%s", err, logs.String())
			default:
			}
			if got, err = query(q); err == nil {
				n := 0
				for job := range jobs {
					if v, has := got[job]; has && ok(v) {
						n++
					}
				}
				if n == len(jobs) {
					return
				}
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("%s: got %v (%v) after 45s\n%s", q, got, err, logs.String())
	}
	until("up", func(v string) bool { return v == "1" })
	until(`sum by (job) ({__name__=~"pms_.+_request_duration_seconds_count"})`, func(v string) bool { return v != "0" })
	// The recording rules ran over those samples (a series per job, even at rate 0).
	until("count by (job) (job_method_le:pms_request_duration_seconds_bucket:rate5m)", func(v string) bool { return v != "0" })
	names := make([]string, 0, len(jobs))
	for j := range jobs {
		names = append(names, j)
	}
	sort.Strings(names)
	t.Logf("prometheus at %s scraped %v; request histograms and recording rules have samples", addr, names)
}
