package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// helpCommands are every command with flags, as typed after `pms`.
var helpCommands = []string{"all", "analytics", "auth", "auth rotate-key", "billing", "broker", "certs", "gateway", "health",
	"migrate", "patient", "user create"}

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

// TestHelpNamesEnvAndDefault: every flag of every command shows its type (never a word of its
// usage, as a back-quote once made `-kafka-brokers pms all`), its environment twins and, when
// it has one, its default.
func TestHelpNamesEnvAndDefault(t *testing.T) {
	types := []string{"string", "int", "float", "duration", "value", ""}
	for _, c := range helpCommands {
		text := help(t, c)
		lines := flagLine.FindAllStringSubmatch(text, -1)
		if len(lines) < 2 {
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
			if c != "health" && c != "certs" && !strings.Contains(text, want) {
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
