package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pms/pms/ops/cluster"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// hangUpMix is the barrage of issue 13: n requests through the gateway, a third each reads,
// searches over every row and creates, whose clients all hang up mid-request.
func hangUpMix(n int, ids []string, tag string) []cluster.HangUp {
	var out []cluster.HangUp
	for i := range n {
		switch i % 3 {
		case 0:
			out = append(out, cluster.HangUp{Method: "GET", Path: "/api/patients/" + ids[i%len(ids)]})
		case 1:
			out = append(out, cluster.HangUp{Method: "GET", Path: "/api/patients?q=e&limit=500"})
		default:
			out = append(out, cluster.HangUp{Method: "POST", Path: "/api/patients", Body: fmt.Sprintf(
				`{"name":"Gone %d","email":"gone%d-%s@example.org","address":"1 Main St","dateOfBirth":"1990-12-10"}`, i, i, tag)})
		}
	}
	return out
}

// seedPatients creates n patients through the gateway with 8 clients and returns their ids.
func seedPatients(t *testing.T, gw, token string, n int) []string {
	t.Helper()
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				code, b, err := cluster.Do(context.Background(), gw, token, "POST", "/api/patients", fmt.Sprintf(
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

// checkAfterHangUps is what must hold once clients hung up (issue 13): the next 100 ordinary
// requests all answer 2xx, the breaker in front of each named upstream is closed, the hang-ups
// were seen as canceled (not as failures) in the gateway's request metrics, and every patient
// that exists has its create entry in the audit log.
func checkAfterHangUps(t *testing.T, gw, gwAdmin, token string, ids []string, breakers ...string) {
	t.Helper()
	ctx := context.Background()
	for i := range 100 {
		var code int
		var b []byte
		var err error
		if i%4 == 3 {
			code, b, err = cluster.Do(ctx, gw, token, "POST", "/api/patients", fmt.Sprintf(
				`{"name":"After %d","email":"after%d-%d@example.org","address":"1 Main St","dateOfBirth":"1990-12-10"}`, i, i, time.Now().UnixNano()))
		} else if i%4 == 2 {
			code, b, err = cluster.Do(ctx, gw, token, "GET", "/api/patients?q=e&limit=50", "")
		} else {
			code, b, err = cluster.Do(ctx, gw, token, "GET", "/api/patients/"+ids[i%len(ids)], "")
		}
		if err != nil || code/100 != 2 {
			t.Fatalf("request %d after the hang-ups: %d %v %s (a caller gone must not count against the upstream)", i, code, err, b)
		}
	}
	for _, series := range breakers {
		if v, err := cluster.Gauge(gwAdmin, series); err != nil || v != 0 {
			t.Fatalf("%s = %v, %v after the hang-ups; want 0 (closed)", series, v, err)
		}
	}
	failed, err := cluster.Sum(gwAdmin, "pms_gateway_request_duration_seconds_count", `code="unavailable"`)
	if err != nil || failed != 0 {
		t.Fatalf("gateway answered %v requests unavailable during the hang-ups (%v); want 0", failed, err)
	}
	canceled, err := cluster.Sum(gwAdmin, "pms_gateway_request_duration_seconds_count", `code="canceled"`)
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
		missing, err := cluster.UnauditedPatients(ctx, gw, token)
		if err == nil && len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("patients without their create audit entry: %v (%v)", missing, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval of a deadline-bound wait
	}
}

// TestClientsHangingUp: 50 clients that disconnect mid-request through the gateway of
// `pms all` (PostgreSQL and SQLite) must not open the patient breaker, nor leave a created
// patient unaudited (issue 13).
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
			ids := seedPatients(t, gw, token, 300)
			if err := cluster.HangUps(gw, token, hangUpMix(50, ids, name), 20*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			checkAfterHangUps(t, gw, a["gateway/admin"], token, ids, `pms_gateway_breaker_state{upstream="patient"}`)
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
