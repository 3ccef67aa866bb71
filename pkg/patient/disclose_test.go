package patient_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/polltest"
)

// disclosingWriter is an audit writer carrying disc: wired as cmd/pms wires it
// (Disclosures.Wire: a single-record access kept in its entry's row), or with the hook alone
// (every disclosure a row of its own, as before migration 00032).
func disclosingWriter(t *testing.T, d *db.DB, disc *patient.Disclosures, wire bool) *audit.Writer {
	t.Helper()
	o := audit.Options{Table: patient.AuditTable, AfterBatch: disc.Hook(nil)}
	if wire {
		o = audit.Options{Table: patient.AuditTable}
		disc.Wire(&o)
	}
	w := audit.NewWriter(d, o)
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

// newDisclosingService is newService with the disclosure hook on its audit writer and a
// search key, as cmd/pms wires it.
func newDisclosingService(t *testing.T, d *db.DB) patient.Service {
	t.Helper()
	disc := patient.NewDisclosures(d)
	w := disclosingWriter(t, d, disc, true)
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

// TestReadIsItsOwnDisclosure: with the writer wired (Disclosures.Wire), a read's disclosure is
// kept in its chained entry (disclosed_via, disclosed_emergency) and writes no
// audit_disclosures row; the access log shows it beside the reads recorded as rows before
// (a writer with the hook alone, as before migration 00032), each exactly once, newest first,
// with its transport, and pages across both kinds. A read of another record and a read that
// found nothing disclose nothing of this patient.
func TestReadIsItsOwnDisclosure(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		bg := context.Background()
		key := []byte("0123456789abcdef0123456789abcdef")
		// Two services over one database, one after the other: the old wiring, then the new.
		oldDisc := patient.NewDisclosures(d)
		oldW := disclosingWriter(t, d, oldDisc, false)
		old := patient.NewService(patient.NewStore(d), oldW, patient.Options{Disclosures: oldDisc, SearchKey: key})
		doc := observe.WithTransport(ctxAs("clin1"), "http")
		p, err := old.Create(doc, req(1))
		if err != nil {
			t.Fatal(err)
		}
		other, err := old.Create(doc, req(2))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := old.Get(observe.WithTransport(ctxAs("clin2"), "kafka"), p.ID); err != nil {
			t.Fatal(err)
		}
		if err := oldW.Close(bg); err != nil {
			t.Fatal(err)
		}
		newDisc := patient.NewDisclosures(d)
		s := patient.NewService(patient.NewStore(d), disclosingWriter(t, d, newDisc, true), patient.Options{Disclosures: newDisc, SearchKey: key})
		if _, err := s.Get(observe.WithTransport(ctxAs("clin3"), "grpc"), p.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(doc, other.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(doc, "7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59"); errs.KindOf(err) != errs.NotFound {
			t.Fatalf("get unknown: %v", err)
		}

		// The new read: no row, its entry annotated. The old read and the create: rows.
		var rows, annotated int
		if err := d.GetContext(bg, &rows, d.Rebind(`SELECT count(*) FROM audit_disclosures WHERE patient_id = ?`), p.ID); err != nil || rows != 2 {
			t.Fatalf("disclosure rows = %d, %v; want 2 (the create and the read before Wire)", rows, err)
		}
		var via string
		if err := d.GetContext(bg, &via, d.Rebind(`SELECT disclosed_via FROM audit_log WHERE subject_id = ? AND disclosed_via IS NOT NULL`), p.ID); err != nil || via != "grpc" {
			t.Fatalf("annotated entry: via %q, %v; want one, grpc", via, err)
		}
		if err := d.GetContext(bg, &annotated, `SELECT count(*) FROM audit_log WHERE disclosed_via IS NOT NULL`); err != nil || annotated != 2 {
			t.Fatalf("annotated entries = %d, %v; want 2 (a read of each record)", annotated, err)
		}

		admin := authz.WithPrincipal(bg, authz.Principal{Subject: "priv1", Role: authz.RolePrivacy})
		page, err := s.AccessLog(admin, patient.AccessLogQuery{PatientID: p.ID})
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, r := range page.Records {
			if r.Position != 0 || r.Emergency || r.Outcome != audit.OutcomeSuccess {
				t.Fatalf("record = %+v", r)
			}
			seen = append(seen, r.Action+"/"+r.Actor+"/"+r.Transport)
		}
		if want := "read/clin3/grpc,read/clin2/kafka,create/clin1/http"; strings.Join(seen, ",") != want {
			t.Fatalf("access log %v, want %s", seen, want)
		}
		// One record a page: the token crosses from the entry's own row to the older rows.
		var paged []string
		token := ""
		for range 4 {
			pg, err := s.AccessLog(admin, patient.AccessLogQuery{PatientID: p.ID, Limit: 1, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range pg.Records {
				paged = append(paged, r.Actor)
			}
			if token = pg.NextPageToken; token == "" {
				break
			}
		}
		if strings.Join(paged, ",") != "clin3,clin2,clin1" {
			t.Fatalf("paged access log %v", paged)
		}
		if rep, err := audit.Verify(bg, d, patient.AuditTable); err != nil || !rep.OK {
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

// TestChangeChainedByAnotherProcessKeepsItsDisclosure: a change whose process could not chain
// its entry (the audit log failed right after the commit, as before a crash) is chained by
// another process's writer, which never saw the request. The access log still shows how the
// change arrived and its break-glass use, because the change's transaction recorded both
// beside the entry in audit_pending (migration 00033). Kept in the first process's memory
// only, as before, the update read "unknown" and lost its emergency mark.
func TestChangeChainedByAnotherProcessKeepsItsDisclosure(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		store := patient.NewStore(d)
		disc := patient.NewDisclosures(d)
		w := disclosingWriter(t, d, disc, true)
		s := patient.NewService(store, w, patient.Options{Disclosures: disc})
		admin, doc, id := brokenGlassRecord(t, s)
		got, err := s.Get(doc, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		// The same process, its audit log gone: the update commits with its pending entry.
		down := patient.NewService(store, failingLog{}, patient.Options{Disclosures: disc})
		u := req(1)
		if _, err := down.Update(doc, patient.UpdateRequest{ID: id, Name: "Changed In A&E", Email: u.Email,
			Address: u.Address, DateOfBirth: u.DateOfBirth, IfMatch: got.Version}); err != nil {
			t.Fatal(err)
		}
		// Another process: its own disclosures, its own writer, nothing registered.
		other := patient.NewDisclosures(d)
		w2 := disclosingWriter(t, d, other, true)
		if err := w2.Settle(context.Background()); err != nil {
			t.Fatal(err)
		}
		up := patient.NewService(store, w2, patient.Options{Disclosures: other})
		wantBreakGlassJourney(t, up, admin, id)
	})
}

// TestChangeMovedBeforeSettleKeepsItsDisclosure: the writer's periodic move may chain a
// change's entry as soon as its transaction commits, before the service settles it. The
// access log must still show how the change arrived and its break-glass use, because the
// disclosure is registered before the transaction (disclosingLog.prepare). The store stalls
// after each commit until the writer has moved the entry (a seam for this test): registered
// only at Settle, as before, the create and the update read "unknown" and the update loses
// its emergency mark.
func TestChangeMovedBeforeSettleKeepsItsDisclosure(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		disc := patient.NewDisclosures(d)
		o := audit.Options{Table: patient.AuditTable, MoveInterval: 5 * time.Millisecond}
		disc.Wire(&o)
		w := audit.NewWriter(d, o)
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		store := patient.NewStore(d)
		moved := 0
		patient.StallAfterCommit(store, func(ctx context.Context) {
			e, ok := audit.PendingEntry(ctx)
			if !ok {
				return
			}
			polltest.Until(t, 10*time.Second, "the writer's move chains "+e.Action, func() bool {
				var n int
				err := d.GetContext(context.Background(), &n, d.Rebind(`SELECT count(*) FROM audit_log WHERE id = ?`), e.ID)
				return err == nil && n == 1
			})
			moved++
		})
		s := patient.NewService(store, w, patient.Options{Disclosures: disc})
		admin, doc, id := brokenGlassRecord(t, s)
		readAndChange(t, s, doc, id)
		if moved < 2 {
			t.Fatalf("%d changes moved before their settle, want the create and the update at least", moved)
		}
		wantBreakGlassJourney(t, s, admin, id)
	})
}

// brokenGlassRecord creates a record as a clinician over gRPC, restricts it as an admin over
// HTTP and gives the clinician a break-glass grant to it (underBreakGlass): the contexts of
// both and the record's id.
func brokenGlassRecord(t *testing.T, s patient.Service) (admin, doc context.Context, id string) {
	t.Helper()
	admin = observe.WithTransport(ctxRole("admin-1", authz.RoleAdmin), "http")
	doc = observe.WithTransport(ctxRole("doc-1", authz.RoleClinician), "grpc")
	p, err := s.Create(doc, req(1))
	if err != nil {
		t.Fatal(err)
	}
	underBreakGlass(t, s, admin, doc, p.ID)
	return admin, doc, p.ID
}

// wantBreakGlassJourney checks that record id's access log, read by admin, shows the journey
// of the break-glass tests, newest first: the update and the read before it under the grant,
// both by gRPC, and the create before the record was restricted.
func wantBreakGlassJourney(t *testing.T, s patient.Service, admin context.Context, id string) {
	t.Helper()
	page, err := s.AccessLog(admin, patient.AccessLogQuery{PatientID: id})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, r := range page.Records { // newest first
		seen = append(seen, r.Action+"/"+r.Transport+"/"+map[bool]string{true: "emergency", false: "normal"}[r.Emergency])
	}
	if want := "update/grpc/emergency,read/grpc/emergency,create/grpc/normal"; strings.Join(seen, ",") != want {
		t.Fatalf("access log %v, want %s", seen, want)
	}
}
