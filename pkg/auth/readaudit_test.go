package auth

import (
	"context"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// withoutReads drops the successful reads of users and of the audit log (audited since issue
// 17), for tests about what the other actions audited.
func withoutReads(entries []AuditEntry) []AuditEntry {
	var out []AuditEntry
	for _, e := range entries {
		if (e.Action == ActionAuditRead || e.Action == ActionUserRead) && e.Outcome == "success" {
			continue
		}
		out = append(out, e)
	}
	return out
}

// TestReadsOfUsersAndAuditAreAudited: listing users, reading one, and reading the audit log
// each write an entry naming the reader (issue 17).
func TestReadsOfUsersAndAuditAreAudited(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		u := e.user(t, "reader-target@example.org", authz.RoleClinician)
		ctx := admin("root")
		if _, err := e.svc.ListUsers(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.GetUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Audit(authz.WithPrincipal(context.Background(), authz.Principal{Subject: "priv", Role: authz.RolePrivacy}), AuditQuery{UserID: u.ID}); err != nil {
			t.Fatal(err)
		}
		all, err := e.svc.Audit(ctx, AuditQuery{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, a := range all {
			seen[a.Action+"/"+a.Actor+"/"+a.UserID] = true
		}
		for _, want := range []string{ActionUserRead + "/root/", ActionUserRead + "/root/" + u.ID, ActionAuditRead + "/priv/" + u.ID} {
			if !seen[want] {
				t.Errorf("no %s in %v", want, seen)
			}
		}
	})
}
