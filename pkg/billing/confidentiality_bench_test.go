package billing_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// BenchmarkListInvoicesConfidentiality prices the restriction check on billing's widest read:
// a 500-invoice page of 50 patients, 5 of them restricted, read by a billing clerk (one
// lookup of the page's patients, the restricted ones' rows left out and their refusals
// audited) against the same page for the patient service (vouched: no lookup, nothing left
// out) and for the clerk once nobody is restricted (the lookup alone). On PostgreSQL.
func BenchmarkListInvoicesConfidentiality(b *testing.B) {
	d := dbtest.Open(b, db.Postgres, migrations.Billing())
	s, store := newServiceAndStore(b, d)
	ctx := ctxAs("u-billing")
	var patients []string
	for range 50 {
		pid := uuid.NewString()
		if _, err := s.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: pid}); err != nil {
			b.Fatal(err)
		}
		patients = append(patients, pid)
	}
	for i := range 500 {
		if _, err := s.CreateInvoice(ctx, invoiceReq(patients[i%50], "USD")); err != nil {
			b.Fatal(err)
		}
	}
	for _, pid := range patients[:5] {
		if _, err := store.RecordConfidentiality(context.Background(), billing.ConfidentialityChange{PatientID: pid, Restricted: true, Version: 2}); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		ctx  context.Context
		want int
		lift bool
	}{{"clerk", ctx, 450, false}, {"vouched", authz.WithCheckedBy(ctx, "patient"), 500, false}, {"clerk-none-restricted", ctx, 500, true}} {
		if c.lift {
			for _, pid := range patients[:5] {
				if _, err := store.RecordConfidentiality(context.Background(), billing.ConfidentialityChange{PatientID: pid, Version: 3}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				page, err := s.ListInvoices(c.ctx, billing.InvoiceQuery{Limit: 500})
				if err != nil || len(page.Invoices) != c.want {
					b.Fatalf("%d invoices, %v; want %d", len(page.Invoices), err, c.want)
				}
			}
		})
	}
}
