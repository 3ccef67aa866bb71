// Package alerts holds TestAlertDelivery: the alert path of the compose stack (Prometheus with
// ops/prometheus/rules.yml → Alertmanager with ops/alertmanager/alertmanager.yml → the
// on-call's webhook) run with the real binaries against a running platform.
package alerts

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/ops/cluster"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// tool finds a Debian binary; without it the test skips, except under CI=true (.ci/run
// installs prometheus and prometheus-alertmanager).
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (apt-get install %s)", name, pkg)
		}
		t.Skipf("%s is not installed (apt-get install %s): skipped", name, pkg)
	}
	return p
}

// notification is what Alertmanager's webhook receiver posts (version 4), reduced to what
// the test reads.
type notification struct {
	Status string `json:"status"`
	Alerts []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"alerts"`
}

// TestAlertDelivery runs the platform (every service a process, ops/cluster), a real
// Prometheus with ops/prometheus/local.yml and the real rules (PMSTargetDown's "for" cut to
// 2 s, intervals to 1 s) and a real Alertmanager with ops/alertmanager/alertmanager.yml (the
// receiver's URL pointed at a webhook in the test, its waits cut to 1 s). Stopping the
// analytics service delivers PMSTargetDown for job analytics, firing, with its runbook link;
// starting it again delivers the same alert resolved.
func TestAlertDelivery(t *testing.T) {
	promBin := tool(t, "prometheus", "prometheus")
	amBin := tool(t, "prometheus-alertmanager", "prometheus-alertmanager")
	c := cluster.Start(t, cluster.Options{DatabaseURL: dbtest.PostgresDatabase(t), Plain: true})

	got := make(chan notification, 64)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case got <- n:
		default: // the test has what it needs or has ended; never block Alertmanager
		}
	}))
	defer hook.Close()
	dir := t.TempDir()

	// Alertmanager: the repository's configuration, its receiver pointed at the test's hook.
	amCfg := rewrite(t, filepath.Join("..", "alertmanager", "alertmanager.yml"), map[string]string{
		"http://alert-bridge.clinic.internal:9095/pms": hook.URL,
		"group_wait: 30s": "group_wait: 1s", "group_interval: 5m": "group_interval: 1s", "group_wait: 10s": "group_wait: 1s",
	})
	amAddr := freeAddr(t)
	start(t, amBin, "--config.file="+write(t, dir, "alertmanager.yml", amCfg), "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=", "--log.level=warn")

	// Prometheus: local.yml's jobs on the cluster's admin ports, alerts to the Alertmanager.
	rules := rewrite(t, filepath.Join("..", "prometheus", "rules.yml"), map[string]string{
		"expr: up{job=~\"auth|patient|billing|analytics|gateway|postgres\"} == 0\n        for: 2m": "expr: up{job=~\"auth|patient|billing|analytics|gateway|postgres\"} == 0\n        for: 2s",
	})
	repl := map[string]string{"scrape_interval: 15s": "scrape_interval: 1s", "scrape_timeout: 10s": "scrape_timeout: 1s",
		"evaluation_interval: 15s": "evaluation_interval: 1s", "  - rules.yml": "  - " + write(t, dir, "rules.yml", rules),
		`"localhost:9093"`: `"` + amAddr + `"`}
	for job, port := range map[string]string{"auth": "4105", "patient": "4100", "billing": "4101", "analytics": "4102", "gateway": "4104"} {
		repl[`"localhost:`+port+`"`] = `"` + c.Addr(job+"/admin") + `"`
	}
	promCfg := rewrite(t, filepath.Join("..", "prometheus", "local.yml"), repl)
	start(t, promBin, "--config.file="+write(t, dir, "prometheus.yml", promCfg), "--storage.tsdb.path="+filepath.Join(dir, "prom"),
		"--web.listen-address="+freeAddr(t), "--log.level=warn")

	// waitFor reads notifications until one carries PMSTargetDown for analytics in state.
	waitFor := func(state string) time.Duration {
		t.Helper()
		begin := time.Now()
		deadline := time.After(60 * time.Second)
		for {
			select {
			case n := <-got:
				for _, a := range n.Alerts {
					if a.Labels["alertname"] != "PMSTargetDown" || a.Labels["job"] != "analytics" || a.Status != state {
						continue
					}
					if a.Annotations["runbook_url"] != "docs/operations.md#pmstargetdown" || a.Labels["severity"] != "page" {
						t.Errorf("alert %+v: want severity page and runbook_url docs/operations.md#pmstargetdown", a)
					}
					return time.Since(begin)
				}
			case <-deadline:
				t.Fatalf("no %s PMSTargetDown for analytics within 60s", state)
			}
		}
	}
	// Nothing is down yet: wait until Prometheus scrapes analytics (its first scrape is the
	// baseline), then stop it.
	waitScraped(t, c.Addr("analytics/admin"))
	an := c.Proc("analytics")
	if code, err := an.Term(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("stop analytics: exit %d %v", code, err)
	}
	fired := waitFor("firing")
	if err := an.Restart(c.Bin, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	resolved := waitFor("resolved")
	t.Logf("FIGURES alert delivery: firing webhook %s after the stop, resolved %s after the restart (scrape/evaluation 1s, for 2s, group_wait/interval 1s)",
		fired.Round(100*time.Millisecond), resolved.Round(100*time.Millisecond))
}

// waitScraped polls the service's admin /metrics until it answers (Prometheus then scrapes it
// within a second).
func waitScraped(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/metrics does not answer: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rewrite reads a configuration of the repository and replaces each old text (which must be
// there, so a changed configuration fails here rather than being tested half-rewritten).
func rewrite(t *testing.T, path string, repl map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for old, new := range repl {
		if !strings.Contains(s, old) {
			t.Fatalf("%s has no %q to rewrite for the test", path, old)
		}
		s = strings.ReplaceAll(s, old, new)
	}
	return s
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs a binary until the test ends; its output is printed if the test fails.
func start(t *testing.T, bin string, args ...string) {
	t.Helper()
	var logs bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s:\n%s", filepath.Base(bin), logs.String())
		}
	})
}
