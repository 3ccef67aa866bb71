package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestApplyPatientMerge, on PostgreSQL and SQLite: a PATIENT_MERGED moves every invoice of
// the duplicate to the survivor's account (new versions, amounts untouched) and records each
// move; replaying the event moves nothing twice; a merge into a survivor without an account
// opens one; PATIENT_UNMERGED moves back exactly what was moved (an invoice created on the
// survivor meanwhile stays), once, however often it is replayed.
func TestApplyPatientMerge(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		w := audit.NewWriter(d, audit.Options{Table: billing.AuditTable})
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		store := billing.NewStore(d)
		s := billing.NewService(store, w, billing.Options{})
		ctx := ctxAs("u1")
		svc := ctxAs("svc:billing")

		survivor, dup := account(t, s), account(t, s)
		var dupInvoices []billing.Invoice
		for _, cur := range []string{"EUR", "JPY"} {
			inv, err := s.CreateInvoice(ctx, invoiceReq(dup, cur))
			if err != nil {
				t.Fatal(err)
			}
			dupInvoices = append(dupInvoices, inv)
		}
		if _, err := s.IssueInvoice(ctx, dupInvoices[0].ID); err != nil {
			t.Fatal(err)
		}
		own, err := s.CreateInvoice(ctx, invoiceReq(survivor, "EUR"))
		if err != nil {
			t.Fatal(err)
		}
		sAcc, _ := s.ListAccounts(ctx, billing.AccountQuery{PatientID: survivor})
		dAcc, _ := s.ListAccounts(ctx, billing.AccountQuery{PatientID: dup})

		merge := billing.MergeChange{EventID: uuid.NewString(), DuplicateID: dup, SurvivorID: survivor, At: time.Now()}
		for i := range 3 { // the first applies, the replays change nothing
			n, err := store.ApplyPatientMerge(svc, merge)
			if err != nil || (i == 0 && n != 2) || (i > 0 && n != 0) {
				t.Fatalf("apply %d: moved %d, %v", i, n, err)
			}
		}
		invoicesOf := func(pid string) map[string]billing.Invoice {
			page, err := s.ListInvoices(ctx, billing.InvoiceQuery{PatientID: pid})
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]billing.Invoice{}
			for _, inv := range page.Invoices {
				out[inv.ID] = inv
			}
			return out
		}
		got := invoicesOf(survivor)
		if len(got) != 3 || len(invoicesOf(dup)) != 0 {
			t.Fatalf("after merge: survivor has %d invoices, duplicate %d", len(got), len(invoicesOf(dup)))
		}
		for _, inv := range dupInvoices {
			g := got[inv.ID]
			if g.AccountID != sAcc[0].ID || g.PatientID != survivor || g.Subtotal != inv.Subtotal || g.Version <= inv.Version {
				t.Errorf("moved invoice %+v (was %+v)", g, inv)
			}
		}
		moves, err := store.MergeMoves(context.Background(), dup)
		if err != nil || len(moves) != 2 || moves[0].FromAccount != dAcc[0].ID || moves[0].ToAccount != sAcc[0].ID || moves[0].ReturnedAt != nil {
			t.Fatalf("moves %+v %v", moves, err)
		}

		// An invoice made on the survivor after the merge stays with it on unmerge.
		later, err := s.CreateInvoice(ctx, invoiceReq(survivor, "EUR"))
		if err != nil {
			t.Fatal(err)
		}
		unmerge := billing.MergeChange{EventID: uuid.NewString(), DuplicateID: dup, Unmerge: true, At: time.Now()}
		for i := range 2 {
			n, err := store.ApplyPatientMerge(svc, unmerge)
			if err != nil || (i == 0 && n != 2) || (i > 0 && n != 0) {
				t.Fatalf("unmerge %d: moved %d, %v", i, n, err)
			}
		}
		back := invoicesOf(dup)
		if len(back) != 2 || back[dupInvoices[1].ID].AccountID != dAcc[0].ID {
			t.Fatalf("after unmerge the duplicate has %+v", back)
		}
		if s := invoicesOf(survivor); len(s) != 2 || s[own.ID].ID == "" || s[later.ID].ID == "" {
			t.Fatalf("after unmerge the survivor has %+v", s)
		}
		moves, _ = store.MergeMoves(context.Background(), dup)
		if len(moves) != 2 || moves[0].ReturnedAt == nil || moves[0].ReturnEventID != unmerge.EventID {
			t.Fatalf("moves after unmerge %+v", moves)
		}

		// A survivor billing has no account for yet gets one.
		fresh := uuid.NewString()
		if n, err := store.ApplyPatientMerge(svc, billing.MergeChange{EventID: uuid.NewString(), DuplicateID: dup, SurvivorID: fresh, At: time.Now()}); err != nil || n != 2 {
			t.Fatalf("merge into a survivor without an account: %d %v", n, err)
		}
		if accs, err := s.ListAccounts(ctx, billing.AccountQuery{PatientID: fresh}); err != nil || len(accs) != 1 {
			t.Fatalf("survivor's account: %+v %v", accs, err)
		}
		if err := w.Settle(context.Background()); err != nil {
			t.Fatal(err)
		}
		if report, err := s.VerifyAudit(context.Background()); err != nil || !report.OK {
			t.Fatalf("audit chain: %+v %v", report, err)
		}
	})
}
