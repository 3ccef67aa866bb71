package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/pms/pms/pkg/gateway"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
)

// TestGatewayRefusalsAreAudited (issue 17): calls the gateway refuses itself reach no
// service, so the gateway keeps its own hash-chained audit log in its own database: an
// analyst's 403 on /api/audit and /api/users and a bad token's 401 on /api/patients are
// entries there (actor, role, the service-prefixed action, outcome denied, request id, client
// address), the chain verifies, and each entry is an AuditEvent of service "gateway" on the
// audit topic, like every service's.
func TestGatewayRefusalsAreAudited(t *testing.T) {
	w := newGuardWorld(t)
	analyst := w.tokens[authz.RoleAnalyst]
	gw := "http://" + w.a["gateway/http"]
	cases := []struct {
		path, token   string
		status        int
		actor, action string
	}{
		{"/api/audit", analyst, http.StatusForbidden, w.ids[authz.RoleAnalyst], "patient.audit_read"},
		{"/api/users", analyst, http.StatusForbidden, w.ids[authz.RoleAnalyst], "auth.user_read"},
		{"/api/gateway/audit/verify", analyst, http.StatusForbidden, w.ids[authz.RoleAnalyst], "gateway.audit.verify"},
		{"/api/patients", "not-a-token", http.StatusUnauthorized, "anonymous", "patient.search"},
	}
	ids := map[string]bool{}
	for _, c := range cases {
		id := w.requestID()
		ids[id] = true
		if resp, b := call(t, "GET", gw+c.path, c.token, "", "X-Request-ID", id); resp.StatusCode != c.status {
			t.Fatalf("%s: %d %s", c.path, resp.StatusCode, b)
		}
		var rows []auditRow
		deadline := time.Now().Add(10 * time.Second)
		for len(rows) == 0 && time.Now().Before(deadline) {
			rows = w.audited("gateway", id)
			if len(rows) == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if len(rows) != 1 {
			t.Fatalf("%s: gateway audit rows %+v", c.path, rows)
		}
		r := rows[0]
		if r.Actor != c.actor || r.Action != c.action || r.Outcome != audit.OutcomeDenied || r.ClientAddress == "" {
			t.Fatalf("%s: audit row %+v, want actor %q action %q", c.path, r, c.actor, c.action)
		}
	}
	gwDB, err := db.Open(context.Background(), w.dbURL, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	defer gwDB.Close()
	if rep, err := audit.Verify(context.Background(), gwDB, gateway.AuditTable); err != nil || !rep.OK || rep.Rows < 3 {
		t.Fatalf("the gateway's chain: %+v %v", rep, err)
	}
	// The entries are on the audit topic as the gateway's.
	r := brokertest.NewReader(t, w.a["broker/kafka"], audit.Topic)
	for len(ids) > 0 {
		m := r.Read(1, 30*time.Second)[0]
		var ev eventsv1.AuditEvent
		if proto.Unmarshal(m.Value, &ev) == nil && ev.GetService() == "gateway" {
			delete(ids, ev.GetRequestId())
		}
	}
}
