package analytics_test

import (
	"context"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/authz/authztest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
)

// TestSummaryReadsAreAudited: an allowed read, a rejected one and a refused one each leave an
// audit entry; the metrics source leaves none; a rebuild leaves the log alone.
func TestSummaryReadsAreAudited(t *testing.T) {
	issuer := authztest.New(t)
	dbtest.Each(t, migrations.Analytics(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		w := audit.NewWriter(d, audit.Options{Table: analytics.AuditTable, Service: "analytics"})
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		svc := analytics.NewService(analytics.NewStore(d), analytics.Options{Audit: w})
		set := analytics.NewEndpoints(svc, analytics.EndpointOptions{
			Guard: authz.NewGuard(issuer.Verifier(), analytics.Roles, analytics.DeniedAuditor(w))})
		if _, err := set.GetSummary(authz.WithToken(ctx, issuer.Token(t, "an-1", authz.RoleAnalyst)), analytics.SummaryQuery{}); err != nil {
			t.Fatal(err)
		}
		if _, err := set.GetSummary(authz.WithToken(ctx, issuer.Token(t, "an-1", authz.RoleAnalyst)), analytics.SummaryQuery{From: "x"}); errs.KindOf(err) != errs.InvalidArgument {
			t.Fatalf("bad from: %v", err)
		}
		if _, err := set.GetSummary(authz.WithToken(ctx, issuer.Token(t, "cl-1", authz.RoleClinician)), analytics.SummaryQuery{}); errs.KindOf(err) != errs.PermissionDenied {
			t.Fatalf("clinician: %v", err)
		}
		if _, err := svc.MetricsSource(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		entries, err := audit.List(ctx, d, analytics.AuditTable, audit.Query{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, e := range entries {
			if e.Action != analytics.ActionReadSummary {
				t.Fatalf("entry %+v", e)
			}
			got[e.Actor+" "+e.Outcome]++
		}
		want := map[string]int{"an-1 success": 1, "an-1 rejected": 1, "cl-1 denied": 1}
		if len(got) != len(want) || got["an-1 success"] != 1 || got["an-1 rejected"] != 1 || got["cl-1 denied"] != 1 {
			t.Fatalf("audit entries %v, want %v", got, want)
		}
		if rep, err := audit.Verify(ctx, d, analytics.AuditTable); err != nil || !rep.OK {
			t.Fatalf("chain: %+v %v", rep, err)
		}
	})
}

// TestVerifyAudit (issue 17, item 3): analytics serves its own audit chain's verdict to an
// admin (GET /audit/verify through the gateway), audited as audit.verify; an analyst is
// refused and that refusal audited; a row rewritten behind the chain's back (SQLite: no
// trigger) is named by its seq.
func TestVerifyAudit(t *testing.T) {
	issuer := authztest.New(t)
	d := dbtest.Open(t, db.SQLite, migrations.Analytics())
	ctx := context.Background()
	w := audit.NewWriter(d, audit.Options{Table: analytics.AuditTable, Service: "analytics"})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	svc := analytics.NewService(analytics.NewStore(d), analytics.Options{Audit: w})
	set := analytics.NewEndpoints(svc, analytics.EndpointOptions{
		Guard: authz.NewGuard(issuer.Verifier(), analytics.Roles, analytics.DeniedAuditor(w))})
	admin := authz.WithToken(ctx, issuer.Token(t, "ad-1", authz.RoleAdmin))
	if _, err := set.GetSummary(admin, analytics.SummaryQuery{}); err != nil {
		t.Fatal(err)
	}
	rep, err := set.VerifyAudit(admin)
	if err != nil || !rep.OK || rep.Service != "analytics" || rep.Rows != 1 {
		t.Fatalf("verdict %+v %v", rep, err)
	}
	if _, err := set.VerifyAudit(authz.WithToken(ctx, issuer.Token(t, "an-1", authz.RoleAnalyst))); errs.KindOf(err) != errs.PermissionDenied {
		t.Fatalf("analyst: %v", err)
	}
	entries, err := audit.List(ctx, d, analytics.AuditTable, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range entries {
		got[e.Actor+" "+e.Action+" "+e.Outcome]++
	}
	if got["ad-1 audit.verify success"] != 1 || got["an-1 audit.verify denied"] != 1 {
		t.Fatalf("audit entries %v", got)
	}
	if _, err := d.ExecContext(ctx, `UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	rep, err = set.VerifyAudit(admin)
	if err != nil || rep.OK || rep.FirstBadSeq != 2 {
		t.Fatalf("verdict of a rewritten chain %+v %v", rep, err)
	}
}
