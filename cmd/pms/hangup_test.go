package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pms/pms/ops/cluster"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestClientsHangingUp: 50 clients that disconnect mid-request through the gateway of
// `pms all` (PostgreSQL and SQLite: reads, searches over 300 rows, creates) must not open the
// patient breaker, nor leave a created patient unaudited (issue 13). ops/faults runs the same
// against separate processes, billing reads included.
func TestClientsHangingUp(t *testing.T) {
	for name, url := range map[string]func() string{
		"postgres": func() string { return dbtest.PostgresDatabase(t) },
		"sqlite":   func() string { return "" },
	} {
		t.Run(name, func(t *testing.T) {
			a, _ := startPMS(t, allAddrs, allArgs(t, url(), "--gateway-client-rate=0", "--rate-limit=0")...)
			for _, k := range []string{"auth/admin", "billing/admin", "patient/admin", "gateway/admin"} {
				waitReady(t, a[k])
			}
			gw := "http://" + a["gateway/http"]
			token := loginAdmin(t, gw)
			ids := cluster.SeedPatients(t, gw, token, 300)
			if err := cluster.HangUps(gw, token, cluster.HangUpMix(50, ids, name, false), 20*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			cluster.CheckAfterHangUps(t, gw, a["gateway/admin"], token, ids, false,
				map[string]string{a["gateway/admin"]: `pms_gateway_breaker_state{upstream="patient"}`})
		})
	}
}

// loginAdmin signs the bootstrap admin in through the gateway.
func loginAdmin(t *testing.T, gw string) string {
	t.Helper()
	code, b, err := cluster.Do(context.Background(), gw, "", http.MethodPost, "/auth/login", `{"email":"`+allAdminEmail+`","password":"`+adminPassword+`"}`)
	var pair struct{ Token string }
	if err != nil || code != 200 || json.Unmarshal(b, &pair) != nil || pair.Token == "" {
		t.Fatalf("login: %d %v %s", code, err, b)
	}
	return pair.Token
}
