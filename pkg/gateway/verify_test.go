package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// withOwnAudit returns c with the gateway's own audit log over a fresh database of dialect.
func withOwnAudit(t *testing.T, dialect db.Dialect, c Config) (Config, *db.DB) {
	t.Helper()
	d := dbtest.Open(t, dialect, migrations.Gateway())
	w := audit.NewWriter(d, audit.Options{Table: AuditTable, Service: "gateway"})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	c.Audit, c.AuditDB = w, d
	return c, d
}

// TestVerifyOwnAudit (issue 17, item 3): the gateway serves its own chain's verdict at
// GET /api/gateway/audit/verify, to admins only: the JWT check answers 401 without a token
// and 403 to an analyst (both audited in the gateway's log as gateway.audit.verify, denied),
// an unknown parameter is 400 after the role check, the admin's verdict is audited as a
// success (written before it is served), and a row rewritten behind the chain's back (trigger disabled) is named by its seq.
func TestVerifyOwnAudit(t *testing.T) {
	c, d := withOwnAudit(t, db.Postgres, Config{})
	g, is := newTestGateway(t, c)
	admin, analyst := is.Token(t, "ad-1", authz.RoleAdmin), is.Token(t, "an-1", authz.RoleAnalyst)
	get := func(path, token string) (int, audit.Report) {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		var rep audit.Report
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
		} else if errorWord(t, rec) == "" {
			t.Fatalf("%s: %d without an error word", path, rec.Code)
		}
		return rec.Code, rep
	}
	const path = "/api/gateway/audit/verify"
	for _, tc := range []struct {
		path, token string
		code        int
	}{
		{path, "", http.StatusUnauthorized},
		{path, analyst, http.StatusForbidden},
		{path + "?bogus=1", analyst, http.StatusForbidden},
		{path + "?bogus=1", admin, http.StatusBadRequest},
	} {
		if code, _ := get(tc.path, tc.token); code != tc.code {
			t.Fatalf("GET %s: %d, want %d", tc.path, code, tc.code)
		}
	}
	code, rep := get(path, admin)
	if code != http.StatusOK || !rep.OK || rep.Service != "gateway" || rep.Rows < 3 {
		t.Fatalf("verdict: %d %+v", code, rep)
	}
	entries, err := audit.List(context.Background(), d, AuditTable, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range entries {
		got[e.Actor+" "+e.Action+" "+e.Outcome]++
	}
	if got["anonymous gateway.audit.verify denied"] != 1 || got["an-1 gateway.audit.verify denied"] != 2 ||
		got["ad-1 gateway.audit.verify success"] != 1 {
		t.Fatalf("gateway audit entries %v", got)
	}
	if _, err := d.Exec(`ALTER TABLE audit_log DISABLE TRIGGER USER`); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(`UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	if code, rep := get(path, admin); code != http.StatusOK || rep.OK || rep.FirstBadSeq != 2 {
		t.Fatalf("verdict of a rewritten chain: %d %+v", code, rep)
	}
}
