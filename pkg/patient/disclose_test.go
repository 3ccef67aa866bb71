package patient_test

import (
	"context"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// newDisclosingService is newService with the disclosure hook on its audit writer and a
// search key, as cmd/pms wires it.
func newDisclosingService(t *testing.T, d *db.DB) patient.Service {
	t.Helper()
	disc := patient.NewDisclosures(d)
	w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable, AfterBatch: disc.Hook(nil)})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	key, err := patient.LoadSearchKey(t.TempDir() + "/search.key")
	if err != nil {
		t.Fatal(err)
	}
	return patient.NewService(patient.NewStore(d), w, patient.Options{Disclosures: disc, SearchKey: key})
}

// TestSearchShowsInAccessLog is issue 17's proof: a clinician's search that returned a
// patient shows up in that patient's access log (with its position and transport), the
// search is still one chained entry, and the query text is nowhere in the database.
func TestSearchShowsInAccessLog(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newDisclosingService(t, d)
		ctx := observe.WithTransport(ctxAs("clin1"), "http")
		var ids []string
		for i := range 3 {
			r := req(i)
			r.Name = "Zebulon Quartz " + string(rune('A'+i))
			p, err := s.Create(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, p.ID)
		}
		// Each create has exactly one entry, chained before Create returned (the disclosing
		// log passes the settle through: nothing left pending, nothing written twice).
		var creates, pending int
		if err := d.GetContext(context.Background(), &creates, `SELECT count(*) FROM audit_log WHERE action = 'create'`); err != nil || creates != 3 {
			t.Fatalf("create entries = %d, %v; want 3", creates, err)
		}
		if err := d.GetContext(context.Background(), &pending, `SELECT count(*) FROM audit_pending`); err != nil || pending != 0 {
			t.Fatalf("entries still pending = %d, %v; want 0", pending, err)
		}
		page, err := s.List(ctx, patient.ListQuery{Q: "Zebulon"})
		if err != nil || len(page.Patients) != 3 || page.Patients[1].ID != ids[1] {
			t.Fatalf("search = %+v, %v", page, err)
		}
		var searches int
		if err := d.GetContext(context.Background(), &searches, `SELECT count(*) FROM audit_log WHERE action = 'search'`); err != nil || searches != 1 {
			t.Fatalf("search entries = %d, %v; want one chained entry", searches, err)
		}
		var leaked int
		if err := d.GetContext(context.Background(), &leaked, d.Rebind(`SELECT count(*) FROM audit_searches WHERE fingerprint LIKE ?`), "%Zebulon%"); err != nil || leaked != 0 {
			t.Fatalf("query text stored: %d, %v", leaked, err)
		}
		admin := authz.WithPrincipal(context.Background(), authz.Principal{Subject: "priv1", Role: authz.RolePrivacy})
		target := page.Patients[1].ID
		log, err := s.AccessLog(admin, patient.AccessLogQuery{PatientID: target})
		if err != nil {
			t.Fatal(err)
		}
		if len(log.Records) != 2 { // the create and the search
			t.Fatalf("access log = %+v", log.Records)
		}
		got := log.Records[0]
		if got.Action != patient.ActionSearch || got.Actor != "clin1" || got.Role != "clinician" || got.Position != 2 ||
			got.Transport != "http" || got.Outcome != audit.OutcomeSuccess || got.Emergency {
			t.Fatalf("search record = %+v", got)
		}
		if log.Records[1].Action != patient.ActionCreate || log.Records[1].Position != 0 {
			t.Fatalf("create record = %+v", log.Records[1])
		}
		// Paging: one per page, the token leads to the older record.
		p1, err := s.AccessLog(admin, patient.AccessLogQuery{PatientID: target, Limit: 1})
		if err != nil || len(p1.Records) != 1 || p1.NextPageToken == "" {
			t.Fatalf("page 1 = %+v, %v", p1, err)
		}
		p2, err := s.AccessLog(admin, patient.AccessLogQuery{PatientID: target, Limit: 1, PageToken: p1.NextPageToken})
		if err != nil || len(p2.Records) != 1 || p2.Records[0].Action != patient.ActionCreate || p2.NextPageToken != "" {
			t.Fatalf("page 2 = %+v, %v", p2, err)
		}
		// Reading the access log and the audit log is audited, without being a disclosure.
		if _, err := s.Audit(admin, patient.AuditQuery{PatientID: target}); err != nil {
			t.Fatal(err)
		}
		var reads int
		if err := d.GetContext(context.Background(), &reads, d.Rebind(`SELECT count(*) FROM audit_log WHERE subject_id = ? AND action IN ('access_log_read', 'audit_read') AND actor = 'priv1'`), target); err != nil || reads != 4 { // three access-log pages and one audit read
			t.Fatalf("audited reads = %d, %v", reads, err)
		}
		again, err := s.AccessLog(admin, patient.AccessLogQuery{PatientID: target})
		if err != nil || len(again.Records) != 2 {
			t.Fatalf("access log after reads = %+v, %v", again.Records, err)
		}
		if _, err := s.AccessLog(admin, patient.AccessLogQuery{PatientID: "nope"}); errs.KindOf(err) != errs.InvalidArgument {
			t.Fatalf("bad id: %v", err)
		}
		// An unknown id is not found, and reading it (not found) adds no disclosure rows.
		unknown := "7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59"
		if _, err := s.Get(ctx, unknown); errs.KindOf(err) != errs.NotFound {
			t.Fatalf("get unknown: %v", err)
		}
		if _, err := s.AccessLog(admin, patient.AccessLogQuery{PatientID: unknown}); errs.KindOf(err) != errs.NotFound {
			t.Fatalf("access log of an unknown id: %v", err)
		}
		var stray int
		if err := d.GetContext(context.Background(), &stray, d.Rebind(`SELECT count(*) FROM audit_disclosures WHERE patient_id = ?`), unknown); err != nil || stray != 0 {
			t.Fatalf("disclosures of an unknown id: %d, %v", stray, err)
		}
		if rep, err := audit.Verify(context.Background(), d, patient.AuditTable); err != nil || !rep.OK {
			t.Fatalf("chain = %+v, %v", rep, err)
		}
	})
}

// failingLog is an audit log whose every write fails (the database went away after a commit).
type failingLog struct{}

func (failingLog) Append(context.Context, audit.Entry) error {
	return errs.New(errs.Unavailable, "audit log unreachable")
}

// TestLateMovedChangeKeepsItsDisclosure: a change whose entry stayed pending (the audit log
// failed right after the commit) and was moved into the chain later, by another writer, still
// shows in the patient's access log (transport unknown): no disclosure is lost to an outage.
func TestLateMovedChangeKeepsItsDisclosure(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		disc := patient.NewDisclosures(d)
		down := patient.NewService(patient.NewStore(d), failingLog{}, patient.Options{Disclosures: disc})
		p, err := down.Create(ctxAs("doc-1"), req(1))
		if err != nil {
			t.Fatal(err)
		}
		w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable, AfterBatch: patient.NewDisclosures(d).Hook(nil)})
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		if err := w.Settle(context.Background()); err != nil {
			t.Fatal(err)
		}
		up := patient.NewService(patient.NewStore(d), w, patient.Options{Disclosures: disc})
		page, err := up.AccessLog(authz.WithPrincipal(context.Background(), authz.Principal{Subject: "admin-1", Role: authz.RoleAdmin}),
			patient.AccessLogQuery{PatientID: p.ID})
		if err != nil || len(page.Records) != 1 || page.Records[0].Action != patient.ActionCreate || page.Records[0].Transport != "unknown" {
			t.Fatalf("access log: %+v %v", page.Records, err)
		}
	})
}
