package main

import (
	"context"
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
		c := common{databaseURL: url, dataDir: t.TempDir(), rateLimit: "0", rateBurst: "0", shutdownTimeout: "5s", databaseConns: tc.flag}
		s, err := c.parse(nopWriter{})
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
		c := common{rateLimit: "0", rateBurst: "0", shutdownTimeout: "5s", databaseConns: bad}
		if _, err := c.parse(nopWriter{}); err == nil || !strings.Contains(err.Error(), "--database-max-conns") {
			t.Fatalf("--database-max-conns=%q: got %v, want a refusal naming the flag", bad, err)
		}
	}
}
