package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helpCommands are every command with flags, as typed after `pms`.
var helpCommands = []string{"all", "analytics", "audit rotate-key", "audit verify", "auth", "auth rotate-key", "backup", "backup keygen", "backup verify", "billing", "broker", "certs", "gateway", "health", "kafka setup",
	"migrate", "patient", "restore", "seed", "user create"}

// nonFlagEnv are the environment variables read outside the flags: secrets, never flags
// (flags show in process listings).
var nonFlagEnv = map[string][]string{
	"all": {bootstrapPasswordEnv}, "auth": {bootstrapPasswordEnv}, "user create": {userPasswordEnv},
}

// help returns the --help text of command.
func help(t *testing.T, command string) string {
	t.Helper()
	var out bytes.Buffer
	err := dispatch(context.Background(), append(strings.Fields(command), "--help"), io.Discard, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("pms %s --help: %v", command, err)
	}
	return out.String()
}

var (
	flagLine = regexp.MustCompile(`(?m)^  -([a-z-]+)(?: (\w+))?\n((?:    \t.*\n?)+)`)
	envList  = regexp.MustCompile(`\(env ([A-Z0-9_, ]+)\)`)
)

// standalone are the commands that take only their own flags, not the platform's.
var standalone = map[string]bool{"health": true, "certs": true, "backup": true, "backup keygen": true, "backup verify": true, "restore": true}

// TestHelpNamesEnvAndDefault: every flag of every command shows its type (never a word of its
// usage, as a back-quote once made `-kafka-brokers pms all`), its environment twins and, when
// it has one, its default.
func TestHelpNamesEnvAndDefault(t *testing.T) {
	types := []string{"string", "int", "float", "duration", "value", ""}
	for _, c := range helpCommands {
		text := help(t, c)
		lines := flagLine.FindAllStringSubmatch(text, -1)
		if len(lines) < 1 || (len(lines) < 2 && !standalone[c]) {
			t.Fatalf("pms %s --help lists %d flags:\n%s", c, len(lines), text)
		}
		for _, l := range lines {
			name, typ, usage := l[1], l[2], l[3]
			if !slices.Contains(types, typ) {
				t.Errorf("pms %s: -%s shows %q as its value name", c, name, typ)
			}
			if c == "user create" && (name == "email" || name == "role") {
				continue // the user's own fields, not configuration
			}
			if !envList.MatchString(usage) {
				t.Errorf("pms %s: -%s names no environment twin: %q", c, name, usage)
			}
		}
		for _, want := range []string{`-shutdown-timeout duration`, `(default 20s)`, `-kafka-brokers value`, `-rate-limit float`} {
			if !standalone[c] && !strings.Contains(text, want) {
				t.Errorf("pms %s --help lacks %q", c, want)
			}
		}
	}
}

// TestEnvGolden: every environment variable that worked before typed configuration still
// does, for every command (testdata/env.golden; a name may be added, never removed).
func TestEnvGolden(t *testing.T) {
	got := map[string][]string{}
	for _, c := range helpCommands {
		names := append([]string(nil), nonFlagEnv[c]...)
		for _, m := range envList.FindAllStringSubmatch(help(t, c), -1) {
			for _, n := range strings.Split(m[1], ",") {
				names = append(names, strings.TrimSpace(n))
			}
		}
		slices.Sort(names)
		got[c] = slices.Compact(names)
	}
	b, err := os.ReadFile("testdata/env.golden")
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("PMS_UPDATE_GOLDEN") == "1" {
		var out strings.Builder
		for _, line := range strings.SplitAfter(string(b), "\n") {
			if strings.HasPrefix(line, "#") {
				out.WriteString(line)
			}
		}
		for _, c := range helpCommands {
			out.WriteString(c + ": " + strings.Join(got[c], " ") + "\n")
		}
		if err := os.WriteFile("testdata/env.golden", []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		c, names, _ := strings.Cut(line, ": ")
		for _, n := range strings.Fields(names) {
			if !slices.Contains(got[c], n) {
				t.Errorf("pms %s no longer reads %s", c, n)
			}
		}
	}
}

// TestFlagsTakeTheirTwins: a flag not on the command line takes its first set twin, parsed
// as the flag's type; the command line wins; an unparsable twin is an error naming it; an
// empty twin of a typed flag means unset.
func TestFlagsTakeTheirTwins(t *testing.T) {
	var c common
	f := newFlags("test", io.Discard)
	c.register(f)
	var patientAddr string
	f.String(&patientAddr, "patient-addr", "127.0.0.1:9000", "dial", "PMS_PATIENT_GRPC_ADDR")
	t.Setenv("PMS_SHUTDOWN_TIMEOUT", "7s")
	t.Setenv("PMS_RATE_BURST", "9")
	t.Setenv("PMS_KAFKA_BROKERS", "a:1, b:2,")
	t.Setenv("PMS_PATIENT_GRPC_ADDR", ":9100")
	t.Setenv("PMS_RATE_LIMIT", "")
	if err := f.parse([]string{"--rate-burst=3"}); err != nil {
		t.Fatal(err)
	}
	if c.shutdownTimeout != 7*time.Second || c.rateBurst != 3 || !slices.Equal(c.kafka.brokers, []string{"a:1", "b:2"}) ||
		patientAddr != ":9100" || c.rateLimit != 2000 {
		t.Fatalf("parsed %+v, patient-addr %q", c, patientAddr)
	}
	// A secret may come from a file (PMS_X_FILE), its trailing newline dropped; a file that
	// cannot be read stops the start.
	secret := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(secret, []byte("postgres://pms:s3cret@db/pms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PMS_DATABASE_URL_FILE", secret)
	f = newFlags("test", io.Discard)
	c = common{}
	c.register(f)
	if err := f.parse(nil); err != nil || c.databaseURL != "postgres://pms:s3cret@db/pms" {
		t.Fatalf("PMS_DATABASE_URL_FILE: %q, %v", c.databaseURL, err)
	}
	t.Setenv("PMS_DATABASE_URL_FILE", secret+".missing")
	f = newFlags("test", io.Discard)
	c.register(f)
	if err := f.parse(nil); err == nil || !strings.Contains(err.Error(), "PMS_DATABASE_URL_FILE") {
		t.Fatalf("unreadable PMS_DATABASE_URL_FILE: %v", err)
	}
	t.Setenv("PMS_DATABASE_URL_FILE", "")
	os.Unsetenv("PMS_DATABASE_URL_FILE")
	t.Setenv("PMS_DATABASE_MAX_CONNS", "many")
	f = newFlags("test", io.Discard)
	c = common{}
	c.register(f)
	if err := f.parse(nil); err == nil || !strings.Contains(err.Error(), "PMS_DATABASE_MAX_CONNS") {
		t.Fatalf("unparsable twin: %v", err)
	}
}

// usageTail is how every flag's help ends: its twins, then its default when it has one.
var usageTail = regexp.MustCompile(`\(env [A-Z0-9_, ]+\)(?: \(default (.*)\))?$`)

// TestHelpDefaultsParse: every flag's help ends with its twins and its default, and the
// default printed is a value of the flag's type (so --help shows what a flag starts with, and
// the operator can paste it back); a twin that is also another process's address says so.
func TestHelpDefaultsParse(t *testing.T) {
	parses := map[string]func(string) error{
		"int":      func(s string) error { _, err := strconv.Atoi(s); return err },
		"float":    func(s string) error { _, err := strconv.ParseFloat(s, 64); return err },
		"duration": func(s string) error { _, err := time.ParseDuration(s); return err },
		"string":   func(s string) error { _, err := strconv.Unquote(s); return err },
		"value": func(s string) error {
			if strings.Contains(s, ",,") || strings.HasPrefix(s, ",") || strings.HasSuffix(s, ",") || strings.Contains(s, " ") {
				return errors.New("not a comma-separated list")
			}
			return nil
		},
		"": func(s string) error { _, err := strconv.ParseBool(s); return err },
	}
	for _, c := range helpCommands {
		for _, l := range flagLine.FindAllStringSubmatch(help(t, c), -1) {
			name, typ, usage := l[1], l[2], strings.TrimSpace(strings.ReplaceAll(l[3], "\n    \t", " "))
			if c == "user create" && (name == "email" || name == "role") {
				continue
			}
			m := usageTail.FindStringSubmatch(usage)
			if m == nil {
				t.Errorf("pms %s: -%s does not end with its twins and default: %q", c, name, usage)
				continue
			}
			if def := m[1]; def != "" {
				if err := parses[typ](def); err != nil {
					t.Errorf("pms %s: -%s shows the default %s, not a %s: %v", c, name, def, typ, err)
				}
			}
			if strings.Contains(usage, "_GRPC_ADDR") && !strings.Contains(usage, "its twin is also") {
				t.Errorf("pms %s: -%s shares its twin with another process's flag without saying so: %q", c, name, usage)
			}
		}
	}
}

// TestFlagChecks: a range check declared on a flag refuses a value from the command line and
// from its twin alike, naming the flag in the words the build functions used before, and a
// start reports every refusal at once, before it opens anything.
func TestFlagChecks(t *testing.T) {
	for _, tc := range []struct {
		command string
		args    []string
		env     map[string]string
		want    []string
	}{
		{"auth", []string{"--login-window=0s", "--password-hash-concurrency=-1", "--login-account-attempts=0"}, nil, []string{
			"--login-window: want a positive duration, got 0s", "--password-hash-concurrency: want an integer ≥ 0, got -1",
			"--login-account-attempts: want an integer ≥ 1, got 0"}},
		{"gateway", nil, map[string]string{"PMS_GATEWAY_TIMEOUT": "-1s", "PMS_GATEWAY_CLIENT_BURST": "-2"}, []string{
			"--gateway-timeout: want a positive duration, got -1s", "--gateway-client-burst: want an integer ≥ 0, got -2"}},
		{"patient", []string{"--database-max-conns=1001", "--kafka-partitions=0", "--rate-limit=-0.5", "--shutdown-timeout=0s"}, nil, []string{
			"--database-max-conns: want 1..1000, got 1001", "--kafka-partitions: want 1..1048576, got 0",
			"--rate-limit: want a number ≥ 0, got -0.5", "--shutdown-timeout: want a positive duration, got 0s"}},
		{"health", []string{"--timeout=0s"}, nil, []string{"--timeout: want a positive duration, got 0s"}},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		err := dispatch(context.Background(), append(strings.Fields(tc.command), tc.args...), io.Discard, io.Discard)
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("pms %s %v: got %v, want %q", tc.command, tc.args, err, want)
			}
		}
	}
	// The bounds themselves pass, and a rate of 0 is "no limit" (-1 for ratelimit.Config).
	s, err := parseCommon("--database-max-conns=1000", "--rate-limit=0", "--rate-burst=0", "--kafka-partitions=1")
	if err != nil || s.limit.Rate != -1 || s.kafka.partitions != 1 {
		t.Fatalf("bounds: %+v, %v", s.limit, err)
	}
}

// TestTrustedProxiesTyped: --trusted-proxies is a list of CIDRs, parsed once with the flags
// (its default, its twin, the command line), a malformed one refused naming the flag.
func TestTrustedProxiesTyped(t *testing.T) {
	s, err := parseCommon()
	if err != nil || !slices.Equal(s.trustedProxies, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}) {
		t.Fatalf("default: %v, %v", s.trustedProxies, err)
	}
	t.Setenv("PMS_TRUSTED_PROXIES", "172.28.0.0/16, fd00::/8,")
	if s, err = parseCommon(); err != nil || !slices.Equal(s.trustedProxies, []netip.Prefix{netip.MustParsePrefix("172.28.0.0/16"), netip.MustParsePrefix("fd00::/8")}) {
		t.Fatalf("PMS_TRUSTED_PROXIES: %v, %v", s.trustedProxies, err)
	}
	if s, err = parseCommon("--trusted-proxies=10.0.0.0/8"); err != nil || !slices.Equal(s.trustedProxies, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}) {
		t.Fatalf("--trusted-proxies: %v, %v", s.trustedProxies, err)
	}
	if _, err := parseCommon("--trusted-proxies=10.0.0.1/33"); err == nil || !strings.Contains(err.Error(), "--trusted-proxies") {
		t.Fatalf("a bad CIDR: %v", err)
	}
	t.Setenv("PMS_TRUSTED_PROXIES", "10.0.0.0")
	if _, err := parseCommon(); err == nil || !strings.Contains(err.Error(), "PMS_TRUSTED_PROXIES") {
		t.Fatalf("a bad CIDR in the twin: %v", err)
	}
}
