package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"
)

// repoRoot is where docker-compose.yml, prometheus.yml and ops/ live, seen from cmd/pms.
const repoRoot = "../.."

// pmsServices are the compose services that run the pms image, with the ones each depends on
// being healthy.
var pmsServices = map[string][]string{
	"auth":      {"postgres", "kafka-setup"},
	"billing":   {"postgres", "kafka-setup", "auth"},
	"patient":   {"postgres", "kafka-setup", "auth", "billing"},
	"analytics": {"postgres", "kafka-setup", "auth"},
	"gateway":   {"postgres", "kafka-setup", "auth", "patient", "billing", "analytics"},
}

// oneShots are the compose services that run once to completion (restart "no", no health
// check); what depends on them waits for service_completed_successfully.
var oneShots = map[string]bool{"certs": true, "kafka-setup": true}

// grpcPorts are the contract's gRPC ports, which the services dial one another on.
var grpcPorts = map[string]string{"auth": "9005", "patient": "9000", "billing": "9001", "analytics": "9002"}

var envHelp = regexp.MustCompile(`\(env ([A-Z0-9_, ]+)\)(?: \(default "([^"]*)"\))?`)

// serviceEnv runs `pms <service> --help` and returns every PMS_* variable the command reads,
// with its default: the flags' environment twins are the contract the compose file must meet.
func serviceEnv(t *testing.T, service string) map[string]string {
	t.Helper()
	var out, errOut bytes.Buffer
	_ = dispatch(context.Background(), append(strings.Fields(service), "--help"), &out, &errOut)
	env := map[string]string{}
	for _, m := range envHelp.FindAllStringSubmatch(errOut.String(), -1) {
		for _, n := range strings.Split(m[1], ", ") {
			env[n] = m[2]
		}
	}
	if len(env) < 5 {
		t.Fatalf("pms %s --help listed %d variables:\n%s", service, len(env), errOut.String())
	}
	return env
}

// composeSecrets are the variables compose requires (no defaults for secrets).
var composeSecrets = []string{"POSTGRES_PASSWORD=pg-secret", "PMS_BOOTSTRAP_ADMIN_PASSWORD=admin-secret", "GRAFANA_ADMIN_PASSWORD=grafana-secret",
	"KAFKA_ADMIN_PASSWORD=kafka-secret", "PGBACKREST_CIPHER_PASS=backup-secret"}

// loadComposeWith loads docker-compose.yml the way `docker compose` does, with env as the
// only variables.
func loadComposeWith(env []string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repoRoot, "docker-compose.yml")},
		cli.WithWorkingDirectory(repoRoot), cli.WithEnv(env))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// loadCompose loads docker-compose.yml with the required secrets set and nothing else.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadComposeWith(composeSecrets)
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

// TestComposeRefusesDefaultSecrets: with any required secret unset, compose refuses to load
// the stack (no development password ships), and the secrets given reach their services.
func TestComposeRefusesDefaultSecrets(t *testing.T) {
	for i := range composeSecrets {
		env := append(append([]string{}, composeSecrets[:i]...), composeSecrets[i+1:]...)
		name, _, _ := strings.Cut(composeSecrets[i], "=")
		if _, err := loadComposeWith(env); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: %v; want a refusal naming it", name, err)
		}
	}
	p := loadCompose(t)
	for svc, want := range map[string][2]string{
		"postgres": {"POSTGRES_PASSWORD", "pg-secret"}, "grafana": {"GF_SECURITY_ADMIN_PASSWORD", "grafana-secret"},
		"auth": {bootstrapPasswordEnv, "admin-secret"}, "kafka": {"KAFKA_ADMIN_PASSWORD", "kafka-secret"},
		"kafka-setup": {"PMS_KAFKA_ADMIN_PASSWORD", "kafka-secret"},
		"pgbackrest":  {"PGBACKREST_REPO1_CIPHER_PASS", "backup-secret"}, "postgres-exporter": {"DATA_SOURCE_PASS", "pg-secret"},
	} {
		if v := p.Services[svc].Environment[want[0]]; v == nil || *v != want[1] {
			t.Errorf("%s %s = %v, want %q", svc, want[0], v, want[1])
		}
	}
	if v := p.Services["patient"].Environment["PMS_TRUSTED_PROXIES"]; v == nil || !strings.Contains(*v, "172.28.0.0/16") {
		t.Errorf("PMS_TRUSTED_PROXIES = %v; want the compose network", v)
	}
}

// TestCompose checks docker-compose.yml as compose-go loads it: every service has a health
// check and depends on what it needs being healthy, the pms services get every variable they
// need (each one a variable the command really reads), point at each other by service name
// and the contract's ports, and only the gateway, Prometheus and Grafana are published.
func TestCompose(t *testing.T) {
	p := loadCompose(t)
	want := []string{"alertmanager", "analytics", "auth", "billing", "certs", "gateway", "grafana", "kafka", "kafka-setup", "patient", "pgbackrest",
		"postgres", "postgres-exporter", "prometheus"}
	if got := p.ServiceNames(); !slices.Equal(sortedCopy(got), want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
	deps := map[string][]string{"certs": nil, "kafka": {"certs"}, "kafka-setup": {"certs", "kafka"}, "postgres": {"certs"},
		"prometheus": {"gateway", "postgres-exporter", "alertmanager"}, "grafana": {"prometheus"}, "pgbackrest": {"postgres"},
		"postgres-exporter": {"postgres"}, "alertmanager": nil}
	for s, d := range pmsServices {
		deps[s] = d
	}
	published := map[string]string{"gateway": "4004", "prometheus": "9090", "grafana": "3000"}
	for name, svc := range p.Services {
		t.Run(name, func(t *testing.T) {
			hc := svc.HealthCheck
			switch {
			case oneShots[name]:
				if svc.Restart != "no" || hc == nil || !hc.Disable {
					t.Errorf("a one-shot service: restart %q, health check %+v; want no and disabled", svc.Restart, hc)
				}
			case hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE":
				t.Errorf("no health check: %+v", hc)
			case svc.Restart != "unless-stopped" && svc.Restart != "always":
				t.Errorf("restart = %q", svc.Restart)
			}
			var got []string
			for d, dep := range svc.DependsOn {
				got = append(got, d)
				want := types.ServiceConditionHealthy
				if oneShots[d] {
					want = types.ServiceConditionCompletedSuccessfully
				}
				if dep.Condition != want {
					t.Errorf("depends on %s with condition %q, want %s", d, dep.Condition, want)
				}
			}
			if !slices.Equal(sortedCopy(got), sortedCopy(deps[name])) {
				t.Errorf("depends on %v, want %v", sortedCopy(got), sortedCopy(deps[name]))
			}
			switch port, pub := published[name]; {
			case !pub && len(svc.Ports) > 0:
				t.Errorf("publishes %+v; only gateway, prometheus and grafana may", svc.Ports)
			case pub && (len(svc.Ports) != 1 || svc.Ports[0].Published != port || svc.Ports[0].Target != atou(port)):
				t.Errorf("ports = %+v, want only %s:%s", svc.Ports, port, port)
			}
			for _, v := range svc.Volumes {
				if v.Type == types.VolumeTypeBind {
					if _, err := os.Stat(v.Source); err != nil {
						t.Errorf("bind mount source: %v", err)
					}
				}
			}
			if _, ok := pmsServices[name]; ok {
				checkPMSService(t, name, svc)
			}
		})
	}
}

// checkPMSService checks one service that runs the pms image.
func checkPMSService(t *testing.T, name string, svc types.ServiceConfig) {
	if !slices.Equal(svc.Command, []string{name}) {
		t.Errorf("command = %v, want [%s]", svc.Command, name)
	}
	if svc.Image != "pms:latest" || svc.Build == nil || svc.Build.Dockerfile != "ops/Dockerfile" {
		t.Errorf("image %q build %+v: want pms:latest built from ops/Dockerfile", svc.Image, svc.Build)
	}
	reads := serviceEnv(t, name)
	// Read by the process without a flag: the bootstrap password (auth, environment only)
	// and `pms health`'s address (the health check runs it in the container).
	reads[bootstrapPasswordEnv] = ""
	reads["PMS_HEALTH_ADDR"] = ""
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v == nil {
			t.Errorf("%s has no value", k)
			continue
		}
		env[k] = *v
		if _, ok := reads[k]; !ok {
			t.Errorf("%s is set but pms %s does not read it", k, name)
		}
	}
	adminAddr := reads["PMS_"+strings.ToUpper(name)+"_ADMIN_ADDR"]
	_, adminPort, err := net.SplitHostPort(adminAddr)
	if err != nil {
		t.Fatalf("admin address default %q: %v", adminAddr, err)
	}
	wantHC := []string{"CMD", "pms", "health", "--addr", "127.0.0.1:" + adminPort}
	if !slices.Equal(svc.HealthCheck.Test, wantHC) {
		t.Errorf("health check %v, want %v", svc.HealthCheck.Test, wantHC)
	}
	if env["PMS_HEALTH_ADDR"] != "127.0.0.1:"+adminPort {
		t.Errorf("PMS_HEALTH_ADDR = %q, want the admin port %s (the image's HEALTHCHECK reads it)", env["PMS_HEALTH_ADDR"], adminPort)
	}
	// Listeners default to loopback (issue 15): in a container each binds every interface,
	// where its peers and Prometheus reach it, over TLS with its own certificate (so no
	// --insecure-plaintext), and every client verifies the stack's CA.
	need := map[string]string{"PMS_AUTH_JWKS_URL": "https://auth:4005/.well-known/jwks.json", "PMS_TLS_CA": "/certs/ca.pem",
		"PMS_AUTH_REVOCATIONS_ADDR": "auth:9005",
		"PMS_TLS_CERT":              "/certs/" + name + ".pem", "PMS_TLS_KEY": "/certs/" + name + "-key.pem"}
	if _, ok := env["PMS_INSECURE_PLAINTEXT"]; ok {
		t.Error("PMS_INSECURE_PLAINTEXT is set: the stack runs TLS")
	}
	for _, kind := range []string{"HTTP", "GRPC", "ADMIN"} {
		v := "PMS_" + strings.ToUpper(name) + "_" + kind + "_ADDR"
		if def, ok := reads[v]; ok {
			_, port, _ := net.SplitHostPort(def)
			need[v] = "0.0.0.0:" + port
		}
	}
	{ // every pms service, the gateway included (its audit log, issue 17), has a database and Kafka
		need["PMS_KAFKA_BROKERS"] = "kafka:9092"
		need["PMS_KAFKA_TLS"] = "true"
		need["PMS_KAFKA_CREDENTIALS"] = "/kafka-secrets/kafka-credentials." + name
		dbVar := "PMS_" + strings.ToUpper(name) + "_DATABASE_URL"
		u, err := url.Parse(env[dbVar])
		if err != nil || u.Scheme != "postgres" || u.Host != "postgres:5432" || u.Path != "/pms_"+name ||
			u.Query().Get("sslmode") != "verify-full" || u.Query().Get("sslrootcert") != "/certs/ca.pem" {
			t.Errorf("%s = %q, want postgres://…@postgres:5432/pms_%s?sslmode=verify-full&sslrootcert=/certs/ca.pem", dbVar, env[dbVar], name)
		}
	}
	dials := map[string][]string{"patient": {"billing"}, "gateway": {"auth", "patient", "billing", "analytics"}}
	for _, up := range dials[name] {
		need["PMS_"+strings.ToUpper(up)+"_GRPC_ADDR"] = up + ":" + grpcPorts[up]
	}
	for k, v := range need {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if name == "auth" {
		if _, ok := env[bootstrapPasswordEnv]; !ok {
			t.Errorf("auth gets no %s", bootstrapPasswordEnv)
		}
		// Production asks admins for a second factor (make run does not: the default is empty).
		if env["PMS_AUTH_REQUIRE_MFA_ROLES"] != "admin" {
			t.Errorf("PMS_AUTH_REQUIRE_MFA_ROLES = %q, want admin", env["PMS_AUTH_REQUIRE_MFA_ROLES"])
		}
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func atou(s string) uint32 {
	var n uint32
	for _, c := range s {
		n = n*10 + uint32(c-'0')
	}
	return n
}

// TestComposeOneShots: the one-shot services run pms commands that exist with the arguments
// and variables compose gives them: the certs command makes every certificate the stack mounts
// (Kafka's and PostgreSQL's handed to their images' users), and every variable kafka-setup
// sets is one `pms kafka setup` reads.
func TestComposeOneShots(t *testing.T) {
	p := loadCompose(t)
	certs := p.Services["certs"]
	if len(certs.Command) < 3 || certs.Command[0] != "certs" || certs.Command[1] != "--dir" || certs.User != "0:0" {
		t.Fatalf("certs: command %v user %q", certs.Command, certs.User)
	}
	if os.Geteuid() == 0 { // --owner needs root, as in the container
		dir := filepath.Join(t.TempDir(), "certs")
		args := append([]string{"certs", "--dir", dir}, certs.Command[3:]...)
		if err := dispatch(context.Background(), args, io.Discard, io.Discard); err != nil {
			t.Fatalf("pms %v: %v", args, err)
		}
		for _, name := range []string{"auth", "patient", "billing", "analytics", "gateway", "kafka", "postgres"} {
			fi, err := os.Stat(filepath.Join(dir, name+"-key.pem"))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s key: %v %v", name, fi, err)
			}
			want := uint32(65532)
			switch name {
			case "kafka":
				want = 1000
			case "postgres":
				want = 999
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != want {
				t.Errorf("%s key owned by %v, want uid %d", name, fi.Sys(), want)
			}
		}
	}
	setup := p.Services["kafka-setup"]
	if !slices.Equal(setup.Command, []string{"kafka", "setup"}) {
		t.Fatalf("kafka-setup command %v", setup.Command)
	}
	reads := serviceEnv(t, "kafka setup")
	for k := range setup.Environment {
		if _, ok := reads[k]; !ok {
			t.Errorf("kafka-setup sets %s, which pms kafka setup does not read", k)
		}
	}
}

// TestComposeBackupsAndAlerts: PostgreSQL archives its WAL with pgBackRest to an encrypted
// repository whose passphrase comes from the environment (a secret) and is in no file of the
// repository; the pgbackrest service shares its data directory, socket and repository; the
// schedule takes a full backup weekly and a differential daily; Prometheus scrapes
// postgres_exporter and sends its alerts to Alertmanager.
func TestComposeBackupsAndAlerts(t *testing.T) {
	p := loadCompose(t)
	pg, br := p.Services["postgres"], p.Services["pgbackrest"]
	cmd := strings.Join(pg.Command, " ")
	for _, want := range []string{"archive_mode=on", "archive_command=pgbackrest --stanza=pms archive-push %p", "archive_timeout=60", "wal_level=replica"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("postgres command %q lacks %s", cmd, want)
		}
	}
	mounts := func(svc types.ServiceConfig) map[string]string {
		m := map[string]string{}
		for _, v := range svc.Volumes {
			m[v.Target] = v.Source
		}
		return m
	}
	pm, bm := mounts(pg), mounts(br)
	for _, target := range []string{"/var/lib/postgresql/data", "/var/run/postgresql", "/var/lib/pgbackrest", "/etc/pgbackrest/pgbackrest.conf"} {
		if pm[target] == "" || pm[target] != bm[target] {
			t.Errorf("%s: postgres mounts %q, pgbackrest %q; want the same", target, pm[target], bm[target])
		}
	}
	for _, svc := range []types.ServiceConfig{pg, br} {
		if v := svc.Environment["PGBACKREST_REPO1_CIPHER_PASS"]; v == nil || *v != "backup-secret" {
			t.Errorf("%s: PGBACKREST_REPO1_CIPHER_PASS = %v; want the PGBACKREST_CIPHER_PASS secret", svc.Name, v)
		}
	}
	conf, err := os.ReadFile(filepath.Join(repoRoot, "ops", "pgbackrest", "pgbackrest.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"repo1-cipher-type=aes-256-cbc", "repo1-retention-full=", "[pms]", "pg1-path=/var/lib/postgresql/data"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("pgbackrest.conf lacks %s", want)
		}
	}
	if strings.Contains(string(conf), "cipher-pass=") {
		t.Error("pgbackrest.conf holds a passphrase; it comes from the secret")
	}
	sched, err := os.ReadFile(filepath.Join(repoRoot, "ops", "pgbackrest", "schedule.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"stanza-create", "--type=full backup", `type=full; else type=diff`} {
		if !strings.Contains(string(sched), want) {
			t.Errorf("schedule.sh lacks %q", want)
		}
	}
	var prom struct {
		Alerting struct {
			Alertmanagers []struct {
				StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
			}
		}
		ScrapeConfigs []struct {
			JobName       string                       `yaml:"job_name"`
			StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prom); err != nil {
		t.Fatal(err)
	}
	if len(prom.Alerting.Alertmanagers) != 1 || !slices.Equal(prom.Alerting.Alertmanagers[0].StaticConfigs[0].Targets, []string{"alertmanager:9093"}) {
		t.Errorf("prometheus.yml alerting = %+v; want alertmanager:9093", prom.Alerting)
	}
	found := false
	for _, sc := range prom.ScrapeConfigs {
		if sc.JobName == "postgres" && len(sc.StaticConfigs) == 1 && slices.Equal(sc.StaticConfigs[0].Targets, []string{"postgres-exporter:9187"}) {
			found = true
		}
	}
	if !found {
		t.Error("prometheus.yml does not scrape postgres-exporter:9187 as job postgres")
	}
	am := mounts(p.Services["alertmanager"])
	if am["/etc/alertmanager/alertmanager.yml"] == "" {
		t.Error("alertmanager does not mount ops/alertmanager/alertmanager.yml")
	}
}
