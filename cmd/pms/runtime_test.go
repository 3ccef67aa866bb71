package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestDBMaxConns: --database-max-conns sizes each service's PostgreSQL pool (default
// db.DefaultMaxConns, so a platform's four pools fit PostgreSQL's default max_connections),
// and a value that is not a positive integer is refused at start.
func TestDBMaxConns(t *testing.T) {
	url := dbtest.PostgresDatabase(t)
	for _, tc := range []struct {
		flag string
		want int
	}{{"", db.DefaultMaxConns}, {"7", 7}} {
		s, err := parseCommon("--database-url="+url, "--data-dir="+t.TempDir(), "--database-max-conns="+tc.flag)
		if err != nil {
			t.Fatal(err)
		}
		d, err := openServiceDB(context.Background(), s, "billing", "", migrations.Billing())
		if err != nil {
			t.Fatal(err)
		}
		got := d.Stats().MaxOpenConnections
		_ = d.Close()
		if got != tc.want {
			t.Fatalf("--database-max-conns=%q: pool of %d, want %d", tc.flag, got, tc.want)
		}
	}
	for _, bad := range []string{"0", "-1", "x"} {
		if _, err := parseCommon("--database-max-conns=" + bad); err == nil || !strings.Contains(err.Error(), "--database-max-conns") {
			t.Fatalf("--database-max-conns=%q: got %v, want a refusal naming the flag", bad, err)
		}
	}
}

// parseCommon parses args as every command's common flags; an empty --x= is left out.
func parseCommon(args ...string) (settings, error) {
	var c common
	f := newFlags("test", io.Discard)
	c.register(f)
	var given []string
	for _, a := range args {
		if !strings.HasSuffix(a, "=") {
			given = append(given, a)
		}
	}
	if err := f.parse(given); err != nil {
		return settings{}, err
	}
	return c.parse(nopWriter{})
}
