package analytics_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
)

func day(d string, h int) time.Time {
	t, _ := time.Parse(analytics.DayLayout, d)
	return t.Add(time.Duration(h) * time.Hour)
}

// script is a stream with every kind of event, days out of order, and repeats.
func script() []analytics.Event {
	p := func(id, typ string, at time.Time) analytics.Event {
		return analytics.Event{Topic: analytics.TopicPatient, ID: id, Type: typ, OccurredAt: at}
	}
	b := func(id, typ, inv, cur string, sub, amt int64, at time.Time) analytics.Event {
		return analytics.Event{Topic: analytics.TopicBilling, ID: id, Type: typ, InvoiceID: inv, Currency: cur, Subtotal: sub, Amount: amt, OccurredAt: at}
	}
	a := func(id, action, outcome string, at time.Time) analytics.Event {
		return analytics.Event{Topic: analytics.TopicAudit, ID: id, Type: "AUDIT_ENTRY", Action: action, Outcome: outcome, OccurredAt: at}
	}
	return []analytics.Event{
		p("p1", analytics.PatientCreated, day("2026-11-25", 10)),
		p("p2", analytics.PatientCreated, day("2026-11-23", 9)), // an earlier day, later in the stream
		func() analytics.Event { // a registration with possible duplicates (issue 19)
			e := p("p3", analytics.PatientCreated, day("2026-11-25", 23))
			e.PossibleDuplicates = 2
			return e
		}(),
		p("p4", analytics.PatientUpdated, day("2026-11-24", 1)),
		p("p5", analytics.PatientDeleted, day("2026-11-25", 12)),
		p("p1", analytics.PatientCreated, day("2026-11-25", 10)), // repeat
		b("b1", analytics.AccountCreated, "", "", 0, 0, day("2026-11-25", 10)),
		b("b2", analytics.InvoiceIssued, "i1", "USD", 10000, 0, day("2026-11-25", 11)),
		b("b3", analytics.InvoiceIssued, "i2", "EUR", 500, 0, day("2026-11-24", 11)),
		b("b4", analytics.PaymentRecorded, "i1", "USD", 10000, 4000, day("2026-11-25", 12)),
		b("b5", analytics.PaymentRecorded, "i1", "USD", 10000, 6000, day("2026-11-25", 13)),
		b("b6", analytics.InvoicePaid, "i1", "USD", 10000, 6000, day("2026-11-25", 13)),
		b("b7", analytics.InvoiceVoided, "i2", "EUR", 500, 0, day("2026-11-26", 1)),
		b("b7", analytics.InvoiceVoided, "i2", "EUR", 500, 0, day("2026-11-26", 1)), // repeat
		b("b8", analytics.InvoiceVoided, "i3", "EUR", 700, 0, day("2026-11-26", 2)), // a voided draft
		b("b9", analytics.InvoiceIssued, "i4", "USD", 250, 0, day("2026-11-26", 3)),
		a("a1", "read", "success", day("2026-11-25", 14)),
		a("a2", "search", "success", day("2026-11-25", 14)),
		a("a3", "read_invoice", "success", day("2026-11-25", 14)),
		a("a4", "create", "success", day("2026-11-25", 14)),
		a("a5", "void_invoice", "success", day("2026-11-25", 14)),
		a("a6", "read", "denied", day("2026-11-25", 14)),
		a("a7", "login", "success", day("2026-11-25", 14)),
		a("a8", "login", "denied", day("2026-11-27", 5)),
		a("a8", "login", "denied", day("2026-11-27", 5)), // repeat
		// A signed audit checkpoint (docs/audit.md) is not an access: it moves no figure.
		{Topic: analytics.TopicAudit, ID: "c1", Type: analytics.AuditCheckpoint, OccurredAt: day("2026-11-25", 15)},
	}
}

// wantJSON is the summary of script (lag aside).
const wantJSON = `{"patients":{"registered":3,"updated":1,"deleted":1,"merged":0,"live":2,"duplicates":1},
"days":[{"day":"2026-11-23","registered":1,"updated":0,"deleted":0,"invoicesIssued":0},
{"day":"2026-11-24","registered":0,"updated":1,"deleted":0,"invoicesIssued":1},
{"day":"2026-11-25","registered":2,"updated":0,"deleted":1,"invoicesIssued":1},
{"day":"2026-11-26","registered":0,"updated":0,"deleted":0,"invoicesIssued":1}],
"invoices":{"issued":3,"paid":1,"voided":2},
"amounts":[{"currency":"EUR","invoiced":0,"paid":0},{"currency":"USD","invoiced":10250,"paid":10000}],
"access":{"reads":3,"changes":2,"denied":2},
"events":{"patient":5,"billing":9,"audit":8},"lastEventAt":"2026-11-27T05:00:00Z","lag":0}`

func canon(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(x)
	return string(b)
}

func TestFoldIsExactAndIdempotent(t *testing.T) {
	dbtest.Each(t, migrations.Analytics(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		svc := analytics.NewService(analytics.NewStore(d), analytics.Options{})
		if _, fresh, err := svc.Generation(ctx); err != nil || !fresh {
			t.Fatalf("Generation of an empty database: fresh=%v err=%v", fresh, err)
		}
		for i, ev := range script() {
			ev.Partition, ev.Offset = 0, int64(i)
			if err := svc.Fold(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		got, err := svc.GetSummary(ctx, analytics.SummaryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if canon(t, got) != canon(t, json.RawMessage(wantJSON)) {
			t.Fatalf("summary:\n got %s\nwant %s", canon(t, got), canon(t, json.RawMessage(wantJSON)))
		}
		// Every event again: nothing changes.
		for _, ev := range script() {
			if err := svc.Fold(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		again, _ := svc.GetSummary(ctx, analytics.SummaryQuery{})
		if canon(t, again) != canon(t, got) {
			t.Fatalf("a replay changed the figures:\n got %s\nwant %s", canon(t, again), canon(t, got))
		}
		// A day range limits the days only.
		r, err := svc.GetSummary(ctx, analytics.SummaryQuery{From: "2026-11-24", To: "2026-11-25"})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Days) != 2 || r.Days[0].Day != "2026-11-24" || r.Days[1].Day != "2026-11-25" || r.Patients.Registered != 3 {
			t.Fatalf("ranged summary: %+v", r)
		}
		if gen, fresh, err := svc.Generation(ctx); err != nil || fresh || gen == "" {
			t.Fatalf("Generation after folding: %q fresh=%v err=%v", gen, fresh, err)
		}
		// Reset: empty figures, a new generation.
		gen1, _, _ := svc.Generation(ctx)
		gen2, err := svc.Reset(ctx)
		if err != nil || gen2 == gen1 {
			t.Fatalf("Reset: %q (was %q), %v", gen2, gen1, err)
		}
		empty, _ := svc.GetSummary(ctx, analytics.SummaryQuery{})
		if empty.Events != (analytics.EventFigs{}) || len(empty.Days) != 0 || empty.LastEventAt != nil {
			t.Fatalf("after Reset: %+v", empty)
		}
		for _, ev := range script() {
			if err := svc.Fold(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		rebuilt, _ := svc.GetSummary(ctx, analytics.SummaryQuery{})
		if canon(t, rebuilt) != canon(t, got) {
			t.Fatalf("rebuilt figures differ:\n got %s\nwant %s", canon(t, rebuilt), canon(t, got))
		}
	})
}

func TestLagFromWatermarks(t *testing.T) {
	dbtest.Each(t, migrations.Analytics(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		marks := map[analytics.Partition]analytics.Watermarks{
			{Topic: "patient", Partition: 0}: {Oldest: 0, Newest: 10},
			{Topic: "patient", Partition: 1}: {Oldest: 5, Newest: 8},
			{Topic: "audit", Partition: 0}:   {Oldest: 0, Newest: 0},
		}
		svc := analytics.NewService(analytics.NewStore(d), analytics.Options{LagTTL: -1,
			Watermarks: func(context.Context, []string) (map[analytics.Partition]analytics.Watermarks, error) {
				return marks, nil
			}})
		if err := svc.Fold(ctx, analytics.Event{Topic: "patient", Partition: 0, Offset: 6, ID: "x", Type: analytics.PatientCreated}); err != nil {
			t.Fatal(err)
		}
		// patient/0: 10 − 7; patient/1: nothing folded, 8 − 5.
		if got := svc.Lag(ctx); got != 6 {
			t.Fatalf("lag = %d, want 6", got)
		}
	})
}

func TestValidateQuery(t *testing.T) {
	for _, c := range []struct {
		q  analytics.SummaryQuery
		ok bool
	}{
		{analytics.SummaryQuery{}, true},
		{analytics.SummaryQuery{From: "2026-11-01"}, true},
		{analytics.SummaryQuery{From: "2026-11-01", To: "2026-11-01"}, true},
		{analytics.SummaryQuery{From: "2026-11-02", To: "2026-11-01"}, false},
		{analytics.SummaryQuery{From: "2026-13-01"}, false},
		{analytics.SummaryQuery{To: "yesterday"}, false},
		{analytics.SummaryQuery{From: "2026-11-01T00:00:00Z"}, false},
	} {
		err := analytics.ValidateQuery(c.q)
		if (err == nil) != c.ok || (err != nil && errs.KindOf(err) != errs.InvalidArgument) {
			t.Errorf("%+v: %v", c.q, err)
		}
	}
}

func TestClassifyAction(t *testing.T) {
	for action, want := range map[string]analytics.Access{
		"read": analytics.AccessRead, "search": analytics.AccessRead, "history": analytics.AccessRead,
		"read_invoice": analytics.AccessRead, "audit_read": analytics.AccessRead, "read_billing_account": analytics.AccessRead,
		"create": analytics.AccessChange, "update": analytics.AccessChange, "delete": analytics.AccessChange,
		"issue_invoice": analytics.AccessChange, "record_payment": analytics.AccessChange, "user_create": analytics.AccessChange,
		"login": analytics.AccessNone, "logout": analytics.AccessNone, "refresh_reuse": analytics.AccessNone, "": analytics.AccessNone,
	} {
		if got := analytics.ClassifyAction(action); got != want {
			t.Errorf("%q: %v, want %v", action, got, want)
		}
	}
}

// TestFoldBatchIsExactAndOnce: the whole script in one batch (repeats of an event id inside
// it, an invoice issued and voided in it) gives the figures of folding it one event at a
// time, and the batch again changes nothing.
func TestFoldBatchIsExactAndOnce(t *testing.T) {
	dbtest.Each(t, migrations.Analytics(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		svc := analytics.NewService(analytics.NewStore(d), analytics.Options{})
		evs := script()
		for i := range evs {
			evs[i].Offset = int64(i)
		}
		for range 2 {
			if err := svc.FoldBatch(ctx, evs); err != nil {
				t.Fatal(err)
			}
			got, err := svc.GetSummary(ctx, analytics.SummaryQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if canon(t, got) != canon(t, json.RawMessage(wantJSON)) {
				t.Fatalf("summary:\n got %s\nwant %s", canon(t, got), canon(t, json.RawMessage(wantJSON)))
			}
		}
		next, err := analytics.NewStore(d).NextOffsets(ctx)
		if err != nil || next[analytics.Partition{Topic: analytics.TopicAudit}] != int64(len(evs)) {
			t.Fatalf("next offsets %v (%v), want audit/0 at %d", next, err, len(evs))
		}
	})
}

// TestFoldBatchRollsBackWhole: a batch that fails at its last statement (an event whose day
// the days table refuses) folds nothing, not even its event ids; folding the good events
// afterwards (as the consumer does after a crash or a failed batch) counts each once.
func TestFoldBatchRollsBackWhole(t *testing.T) {
	dbtest.Each(t, migrations.Analytics(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		svc := analytics.NewService(analytics.NewStore(d), analytics.Options{})
		good := script()
		bad := append(append([]analytics.Event{}, good...), analytics.Event{Topic: analytics.TopicPatient, ID: "bad",
			Type: analytics.PatientCreated, OccurredAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err := svc.FoldBatch(ctx, bad); err == nil {
			t.Fatal("a batch with an unstorable day folded")
		}
		empty, err := svc.GetSummary(ctx, analytics.SummaryQuery{})
		if err != nil || empty.Events != (analytics.EventFigs{}) || len(empty.Days) != 0 || len(empty.Amounts) != 0 {
			t.Fatalf("after a failed batch: %+v (%v)", empty, err)
		}
		if next, _ := analytics.NewStore(d).NextOffsets(ctx); len(next) != 0 {
			t.Fatalf("a failed batch moved the offsets: %v", next)
		}
		for _, ev := range good[:10] { // the fallback: one at a time, part of them
			if err := svc.Fold(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := svc.FoldBatch(ctx, good); err != nil {
			t.Fatal(err)
		}
		got, _ := svc.GetSummary(ctx, analytics.SummaryQuery{})
		if canon(t, got) != canon(t, json.RawMessage(wantJSON)) {
			t.Fatalf("summary:\n got %s\nwant %s", canon(t, got), canon(t, json.RawMessage(wantJSON)))
		}
		if err := svc.FoldBatch(ctx, []analytics.Event{{Topic: analytics.TopicPatient, Type: analytics.PatientCreated}}); errs.KindOf(err) != errs.InvalidArgument {
			t.Fatalf("a batch with an event without id: %v", err)
		}
	})
}
