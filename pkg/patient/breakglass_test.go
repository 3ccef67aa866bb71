package patient_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
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
)

// clock is a test clock the service reads through Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func ctxRole(subject, role string) context.Context {
	ctx := authz.WithPrincipal(context.Background(), authz.Principal{Subject: subject, Role: role})
	return observe.WithRequestID(ctx, observe.NewRequestID())
}

// TestBreakGlass: a restricted record answers 403 (naming break-glass) to every use and shows
// as a stub in a search; a grant with a reason opens it to its holder alone, until it
// expires on the injected clock; a short or missing reason is refused; every step is in the
// audit log, and the review lists the grant with its holder's reads.
func TestBreakGlass(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		clk := &clock{t: time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)}
		w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable})
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		s := patient.NewService(patient.NewStore(d), w, patient.Options{Now: clk.now, BreakGlassTTL: 30 * time.Minute})
		admin, doc, other := ctxRole("admin-1", authz.RoleAdmin), ctxRole("doc-1", authz.RoleClinician), ctxRole("doc-2", authz.RoleClinician)

		first := req(1)
		first.IdempotencyKey = "create-1"
		p, err := s.Create(doc, first)
		if err != nil || p.Confidentiality != patient.ConfidentialityNormal {
			t.Fatalf("create: %+v %v", p, err)
		}
		// No break-glass on a normal record; bad levels and ids are refused.
		_, err = s.BreakGlass(doc, patient.BreakGlassRequest{ID: p.ID, Reason: "unconscious patient in A&E"})
		wantKind(t, err, errs.Conflict)
		_, err = s.SetConfidentiality(admin, patient.ConfidentialityRequest{ID: p.ID, Confidentiality: "secret"})
		wantKind(t, err, errs.InvalidArgument)
		_, err = s.SetConfidentiality(admin, patient.ConfidentialityRequest{ID: "nope", Confidentiality: patient.ConfidentialityRestricted})
		wantKind(t, err, errs.InvalidArgument)

		r, err := s.SetConfidentiality(admin, patient.ConfidentialityRequest{ID: p.ID, Confidentiality: patient.ConfidentialityRestricted})
		if err != nil || r.Confidentiality != patient.ConfidentialityRestricted || r.Version != 2 {
			t.Fatalf("restrict: %+v %v", r, err)
		}
		if again, err := s.SetConfidentiality(admin, patient.ConfidentialityRequest{ID: p.ID, Confidentiality: patient.ConfidentialityRestricted}); err != nil || again.Version != 2 {
			t.Fatalf("restrict again (no-op): %+v %v", again, err)
		}
		// Every version event says the confidentiality (billing keeps it with the version):
		// PATIENT_CREATED normal at 1, the restricting PATIENT_UPDATED at 2, nothing for the no-op.
		evs := patientEvents(t, d, p.ID)
		if len(evs) != 2 || evs[0].GetConfidentiality() != patient.ConfidentialityNormal || evs[0].GetVersion() != 1 ||
			evs[1].GetEventType() != patient.EventUpdated || evs[1].GetConfidentiality() != patient.ConfidentialityRestricted || evs[1].GetVersion() != 2 {
			t.Fatalf("events %v", evs)
		}

		// Without a grant: 403 naming break-glass, for every use, by everyone (admin too).
		denied := func(ctx context.Context) {
			t.Helper()
			_, err := s.Get(ctx, p.ID)
			if !errors.Is(err, patient.ErrRestricted) || !strings.Contains(errs.As(err).Message, "break-glass") {
				t.Fatalf("get restricted: %v", err)
			}
			_, err = s.History(ctx, p.ID)
			wantKind(t, err, errs.PermissionDenied)
			_, err = s.Update(ctx, patient.UpdateRequest{ID: p.ID, Name: "X Y", Email: p.Email, Address: p.Address, DateOfBirth: p.DateOfBirth})
			wantKind(t, err, errs.PermissionDenied)
			wantKind(t, s.Delete(ctx, patient.DeleteRequest{ID: p.ID}), errs.PermissionDenied)
			_, err = s.BillingAccount(ctx, p.ID)
			wantKind(t, err, errs.PermissionDenied)
			page, err := s.List(ctx, patient.ListQuery{Email: p.Email})
			if err != nil || len(page.Patients) != 1 {
				t.Fatalf("search: %+v %v", page, err)
			}
			if got := page.Patients[0]; !reflect.DeepEqual(got, patient.Patient{ID: p.ID, MRN: p.MRN, Confidentiality: patient.ConfidentialityRestricted}.WithLists()) {
				t.Fatalf("search shows a restricted record unredacted: %+v", got)
			}
		}
		denied(doc)
		denied(admin)

		// The reason is required and at least 10 characters (after trimming).
		for _, reason := range []string{"", "   ", "too short", "  short    ", "bad\x00reason here", strings.Repeat("x", 501)} {
			_, err := s.BreakGlass(doc, patient.BreakGlassRequest{ID: p.ID, Reason: reason})
			wantKind(t, err, errs.InvalidArgument)
		}
		_, err = s.BreakGlass(doc, patient.BreakGlassRequest{ID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", Reason: "unconscious patient in A&E"})
		wantKind(t, err, errs.NotFound)

		// The audit writer stamps entries with the wall clock, which the service reads in
		// production too: the grant starts after the entries above, so the review leaves them out.
		clk.set(time.Now().UTC().Truncate(time.Microsecond).Add(time.Microsecond))
		g, err := s.BreakGlass(doc, patient.BreakGlassRequest{ID: p.ID, Reason: "  unconscious patient in A&E  "})
		if err != nil || g.PatientID != p.ID || g.UserID != "doc-1" || g.Role != authz.RoleClinician ||
			g.Reason != "unconscious patient in A&E" || !g.ExpiresAt.Equal(g.CreatedAt.Add(30*time.Minute)) || !g.CreatedAt.Equal(clk.now()) {
			t.Fatalf("grant: %+v %v", g, err)
		}
		// The holder reads, searches and changes the record; another clinician still cannot.
		clk.add(time.Minute)
		got, err := s.Get(doc, p.ID)
		if err != nil || got.Name != p.Name || got.Confidentiality != patient.ConfidentialityRestricted {
			t.Fatalf("get under grant: %+v %v", got, err)
		}
		if h, err := s.History(doc, p.ID); err != nil || len(h) != 2 || h[0].Patient.Confidentiality != patient.ConfidentialityNormal ||
			h[1].Patient.Confidentiality != patient.ConfidentialityRestricted {
			t.Fatalf("history under grant: %+v %v", h, err)
		}
		if page, err := s.List(doc, patient.ListQuery{Email: p.Email}); err != nil || page.Patients[0].Name != p.Name {
			t.Fatalf("search under grant: %+v %v", page, err)
		}
		// A PUT that echoes confidentiality unchanged keeps it; one that changes it is refused.
		restricted, normal := patient.ConfidentialityRestricted, patient.ConfidentialityNormal
		up := patient.UpdateRequest{ID: p.ID, Name: "Ada Restricted", Email: p.Email, Address: p.Address, DateOfBirth: p.DateOfBirth,
			Unchanged: patient.ReadOnlyFields{Confidentiality: &normal}}
		_, err = s.Update(doc, up)
		wantKind(t, err, errs.InvalidArgument)
		up.Unchanged.Confidentiality = &restricted
		if u, err := s.Update(doc, up); err != nil || u.Confidentiality != patient.ConfidentialityRestricted || u.Name != "Ada Restricted" {
			t.Fatalf("update under grant: %+v %v", u, err)
		}
		up.Unchanged.Confidentiality, up.Address = nil, "2 Other St" // a PUT that omits it leaves it
		if u, err := s.Update(doc, up); err != nil || u.Confidentiality != patient.ConfidentialityRestricted || u.Address != "2 Other St" {
			t.Fatalf("update omitting confidentiality: %+v %v", u, err)
		}
		denied(other)

		// Expired: one instant before the end it works, at the end it is 403 again.
		clk.add(29*time.Minute - time.Microsecond)
		if _, err := s.Get(doc, p.ID); err != nil {
			t.Fatalf("get just before expiry: %v", err)
		}
		clk.add(time.Microsecond)
		denied(doc)
		// An idempotent replay of the create is a read of the record as it is now: refused too.
		_, err = s.Create(doc, first)
		wantKind(t, err, errs.PermissionDenied)

		// Cleared: anyone with the role reads it again without a grant.
		if n, err := s.SetConfidentiality(admin, patient.ConfidentialityRequest{ID: p.ID, Confidentiality: normal}); err != nil || n.Confidentiality != normal {
			t.Fatalf("clear: %+v %v", n, err)
		}
		if _, err := s.Get(other, p.ID); err != nil {
			t.Fatalf("get after clearing: %v", err)
		}

		// The audit log: the grant as break_glass/success, the refusals as denied, the
		// confidentiality changes; the review lists the grant with the holder's entries.
		entries, err := s.Audit(admin, patient.AuditQuery{PatientID: p.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, e := range entries {
			count[e.Action+"/"+e.Outcome]++
		}
		if count["break_glass/success"] != 1 || count["break_glass/rejected"] != 7 || count["read/denied"] != 4 ||
			count["set_confidentiality/success"] != 3 || count["read/success"] != 3 || count["history/denied"] != 4 {
			t.Fatalf("audit counts: %v", count)
		}
		review, err := s.BreakGlassGrants(admin, patient.GrantQuery{PatientID: p.ID})
		if err != nil || len(review) != 1 || review[0].ID != g.ID || review[0].Reason != g.Reason {
			t.Fatalf("review: %+v %v", review, err)
		}
		seen := map[string]int{}
		for _, e := range review[0].Reads {
			if e.Actor != "doc-1" || e.PatientID != p.ID {
				t.Fatalf("review entry of another user or patient: %+v", e)
			}
			seen[e.Action+"/"+e.Outcome]++
		}
		// What the holder did under the grant (entries after its expiry on the injected clock
		// were stamped by the wall clock, still within the grant, and may be there too).
		for _, want := range []string{"break_glass/success", "read/success", "history/success", "update/rejected", "update/success"} {
			if seen[want] == 0 {
				t.Errorf("review reads %v lack %s", seen, want)
			}
		}
		if seen["create/success"] != 0 || seen["break_glass/rejected"] != 0 {
			t.Errorf("review reads %v hold entries from before the grant", seen)
		}
		if first := review[0].Reads[0]; first.Action != "break_glass" {
			t.Errorf("the review's first entry is %s, want the break_glass itself", first.Action)
		}
		if r, err := s.BreakGlassGrants(admin, patient.GrantQuery{UserID: "doc-2"}); err != nil || len(r) != 0 {
			t.Fatalf("review of another user: %+v %v", r, err)
		}
		_, err = s.BreakGlassGrants(admin, patient.GrantQuery{PatientID: "x"})
		wantKind(t, err, errs.InvalidArgument)
		// The review is audited too (it shows who read what).
		entries, err = s.Audit(admin, patient.AuditQuery{Actor: "admin-1", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		reviews := 0
		for _, e := range entries {
			if e.Action == patient.ActionBreakGlassReview {
				reviews++
			}
		}
		if reviews != 3 {
			t.Fatalf("%d audited reviews, want 3", reviews)
		}
	})
}

// TestEmergencyInAccessLog: the access log marks the uses of a restricted record under a
// break-glass grant as emergency (the holder's read and update), and only those: the
// creator's registration and a normal record's reads are not.
func TestEmergencyInAccessLog(t *testing.T) {
	for _, wire := range []bool{false, true} { // disclosure rows; reads kept in their entries
		t.Run(map[bool]string{false: "rows", true: "entries"}[wire], func(t *testing.T) {
			dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) { emergencyInAccessLog(t, d, wire) })
		})
	}
}

// underBreakGlass restricts record id (as admin) and gives doc a break-glass grant to it.
func underBreakGlass(t *testing.T, s patient.Service, admin, doc context.Context, id string) {
	t.Helper()
	if _, err := s.SetConfidentiality(admin, patient.ConfidentialityRequest{ID: id, Confidentiality: patient.ConfidentialityRestricted}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BreakGlass(doc, patient.BreakGlassRequest{ID: id, Reason: "unconscious patient in A&E"}); err != nil {
		t.Fatal(err)
	}
}

// readAndChange reads record id as doc and updates it from that version (req(1)'s fields).
func readAndChange(t *testing.T, s patient.Service, doc context.Context, id string) {
	t.Helper()
	got, err := s.Get(doc, id)
	if err != nil {
		t.Fatal(err)
	}
	u := req(1)
	if _, err := s.Update(doc, patient.UpdateRequest{ID: id, Name: "Changed In A&E", Email: u.Email, Address: u.Address, DateOfBirth: u.DateOfBirth, IfMatch: got.Version}); err != nil {
		t.Fatal(err)
	}
}

// emergencyInAccessLog is TestEmergencyInAccessLog on d, the writer wired as disclosingWriter says.
func emergencyInAccessLog(t *testing.T, d *db.DB, wire bool) {
	t.Helper()
	disc := patient.NewDisclosures(d)
	s := patient.NewService(patient.NewStore(d), disclosingWriter(t, d, disc, wire), patient.Options{Disclosures: disc})
	admin, doc := ctxRole("admin-1", authz.RoleAdmin), ctxRole("doc-1", authz.RoleClinician)
	p, err := s.Create(doc, req(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(doc, p.ID); err != nil {
		t.Fatal(err)
	}
	underBreakGlass(t, s, admin, doc, p.ID)
	readAndChange(t, s, doc, p.ID)
	page, err := s.AccessLog(admin, patient.AccessLogQuery{PatientID: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, r := range page.Records { // newest first
		seen = append(seen, r.Action+"/"+map[bool]string{true: "emergency", false: "normal"}[r.Emergency])
	}
	want := "update/emergency,read/emergency,read/normal,create/normal"
	if strings.Join(seen, ",") != want {
		t.Fatalf("wire %v: access log %v, want %s", wire, seen, want)
	}
}

// TestGrantCheckedAgainInTheTransaction: an update or a delete under a grant that expires
// while the change waits for the record's row lock is refused. The first check (before the
// transaction) passes; the test holds the row locked from another transaction, waits until
// the change is blocked on it (pg_stat_activity), moves the clock past the grant's end and
// lets go: only the check made again inside the transaction, on the locked row, sees the
// expiry (without it the change goes through). PostgreSQL: SQLite has one writer, so nothing
// can come between its check and its write.
func TestGrantCheckedAgainInTheTransaction(t *testing.T) {
	d := dbtest.Open(t, db.Postgres, migrations.Patient())
	for i, c := range []struct {
		name   string
		change func(s patient.Service, ctx context.Context, p patient.Patient) error
	}{
		{"update", func(s patient.Service, ctx context.Context, p patient.Patient) error {
			_, err := s.Update(ctx, patient.UpdateRequest{ID: p.ID, Name: "Late Change", Email: p.Email, Address: p.Address, DateOfBirth: p.DateOfBirth})
			return err
		}},
		{"delete", func(s patient.Service, ctx context.Context, p patient.Patient) error {
			return s.Delete(ctx, patient.DeleteRequest{ID: p.ID})
		}},
	} {
		t.Run(c.name, func(t *testing.T) { grantExpiresWhileWaiting(t, d, req(i+1), c.change) })
	}
}

// grantExpiresWhileWaiting runs TestGrantCheckedAgainInTheTransaction's journey for change.
func grantExpiresWhileWaiting(t *testing.T, d *db.DB, record patient.CreateRequest, change func(s patient.Service, ctx context.Context, p patient.Patient) error) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)}
	w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	s := patient.NewService(patient.NewStore(d), w, patient.Options{Now: clk.now, BreakGlassTTL: 30 * time.Minute})
	admin, doc := ctxRole("admin-1", authz.RoleAdmin), ctxRole("doc-1", authz.RoleClinician)
	p, err := s.Create(doc, record)
	if err != nil {
		t.Fatal(err)
	}
	underBreakGlass(t, s, admin, doc, p.ID)
	clk.add(29 * time.Minute) // one minute of the grant left

	lock, err := d.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback() }()
	if _, err := lock.ExecContext(ctx, `SELECT 1 FROM patients WHERE id = $1 FOR UPDATE`, p.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- change(s, doc, p)
	}()
	// Wait until the change is blocked on the row lock: its first check has passed.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var waiting int
		if err := d.GetContext(ctx, &waiting, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%' AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the change finished before it waited for the row lock: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the change did not wait for the row lock within 15s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	clk.add(2 * time.Minute) // the grant ends while the change waits
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, patient.ErrRestricted) {
		t.Fatalf("change whose grant expired while it waited: %v, want ErrRestricted", err)
	}
	if _, err := s.SetConfidentiality(admin, patient.ConfidentialityRequest{ID: p.ID, Confidentiality: patient.ConfidentialityNormal}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(doc, p.ID); err != nil || got.Name != p.Name {
		t.Fatalf("the refused change changed the record: %+v %v", got, err)
	}
}
