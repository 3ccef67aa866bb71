package billing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
)

// newServiceAndStore is newService that also hands back the store (the topic consumer's
// side: RecordConfidentiality).
func newServiceAndStore(t testing.TB, d *db.DB) (billing.Service, *billing.Store) {
	t.Helper()
	w := audit.NewWriter(d, audit.Options{Table: billing.AuditTable})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	store := billing.NewStore(d)
	return billing.NewService(store, w, billing.Options{}), store
}

func setConfidentiality(t *testing.T, store *billing.Store, pid string, restricted bool, version int64) bool {
	t.Helper()
	kept, err := store.RecordConfidentiality(context.Background(), billing.ConfidentialityChange{PatientID: pid, Restricted: restricted, Version: version, At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return kept
}

// TestRestrictedPatientRefused: once the patient topic said a patient is restricted, billing's
// reads refuse its accounts and invoices to every caller (403 restricted, naming the patient
// service's routes) — by id, by patient, and in a list that names no patient the rows are
// left out — and audit each refusal as denied; an older event, late or redelivered, does not
// lift the restriction, a newer one does; a call the patient service vouches for
// (authz.CheckedBy "patient") is served; writes stay with the billing role.
func TestRestrictedPatientRefused(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		s, store := newServiceAndStore(t, d)
		ctx := ctxAs("u-billing")
		pid, other := account(t, s), account(t, s)
		inv, err := s.CreateInvoice(ctx, invoiceReq(pid, "USD"))
		if err != nil {
			t.Fatal(err)
		}
		otherInv, err := s.CreateInvoice(ctx, invoiceReq(other, "EUR"))
		if err != nil {
			t.Fatal(err)
		}
		accounts, err := s.ListAccounts(ctx, billing.AccountQuery{PatientID: pid})
		if err != nil || len(accounts) != 1 {
			t.Fatalf("accounts before = %v, %v", accounts, err)
		}
		// Created as normal (version 1), restricted at version 2.
		if !setConfidentiality(t, store, pid, false, 1) || !setConfidentiality(t, store, pid, true, 2) {
			t.Fatal("a newer confidentiality was not kept")
		}

		_, err = s.GetInvoice(ctx, inv.ID)
		wantKind(t, err, errs.Restricted)
		if e := errs.As(err); !strings.Contains(e.Message, "/api/patients/{id}/billing-account") || !strings.Contains(e.Message, "/api/patients/{id}/invoices") {
			t.Fatalf("message %q does not point at the patient service's routes", e.Message)
		}
		_, err = s.GetAccount(ctx, accounts[0].ID)
		wantKind(t, err, errs.Restricted)
		_, err = s.ListAccounts(ctx, billing.AccountQuery{PatientID: pid})
		wantKind(t, err, errs.Restricted)
		_, err = s.ListInvoices(ctx, billing.InvoiceQuery{PatientID: strings.ToUpper(pid)})
		wantKind(t, err, errs.Restricted)
		page, err := s.ListInvoices(ctx, billing.InvoiceQuery{})
		if err != nil || len(page.Invoices) != 1 || page.Invoices[0].ID != otherInv.ID {
			t.Fatalf("unfiltered list = %+v, %v; want only the other patient's invoice", page, err)
		}
		page, err = s.ListInvoices(ctx, billing.InvoiceQuery{Status: "draft"})
		if err != nil || len(page.Invoices) != 1 || page.Invoices[0].ID != otherInv.ID {
			t.Fatalf("list by status = %+v, %v; want only the other patient's invoice", page, err)
		}
		// The other patient is untouched.
		if _, err := s.GetInvoice(ctx, otherInv.ID); err != nil {
			t.Fatal(err)
		}

		// Every refusal is audited as denied, under the patient for the list that left rows out.
		denied, err := s.Audit(ctxAs("u-admin"), audit.Query{Actor: "u-billing", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, e := range denied {
			if e.Outcome == audit.OutcomeDenied {
				count[e.Action+" "+e.SubjectID]++
			}
		}
		for key, n := range map[string]int{
			billing.ActionReadInvoice + " " + inv.ID: 1, billing.ActionReadAccount + " " + pid: 1,
			billing.ActionSearchAccounts + " " + pid: 1, billing.ActionSearchInvoices + " " + pid: 3,
		} {
			if count[key] != n {
				t.Errorf("denied entries %q = %d, want %d (all: %v)", key, count[key], n, count)
			}
		}

		// A late or redelivered older event does not lift the restriction.
		if setConfidentiality(t, store, pid, false, 1) || setConfidentiality(t, store, pid, false, 2) {
			t.Fatal("an older (or the same) version was kept")
		}
		_, err = s.GetInvoice(ctx, inv.ID)
		wantKind(t, err, errs.Restricted)

		// The patient service's own call, having checked the grant, is served.
		vouched := authz.WithCheckedBy(ctxAs("u-clinician"), "patient")
		if got, err := s.ListInvoices(vouched, billing.InvoiceQuery{PatientID: pid}); err != nil || len(got.Invoices) != 1 || got.Invoices[0].ID != inv.ID {
			t.Fatalf("patient service's list = %+v, %v", got, err)
		}
		if got, err := s.ListAccounts(vouched, billing.AccountQuery{PatientID: pid}); err != nil || len(got) != 1 {
			t.Fatalf("patient service's accounts = %+v, %v", got, err)
		}
		if _, err := s.GetInvoice(vouched, inv.ID); err != nil {
			t.Fatal(err)
		}
		// Another service's word is not the patient service's.
		_, err = s.GetInvoice(authz.WithCheckedBy(ctxAs("u-clinician"), "gateway"), inv.ID)
		wantKind(t, err, errs.Restricted)

		// Writes stay with the billing role.
		if _, err := s.IssueInvoice(ctx, inv.ID); err != nil {
			t.Fatalf("issue of a restricted patient's invoice: %v", err)
		}

		// A newer event lifts it.
		if !setConfidentiality(t, store, pid, false, 3) {
			t.Fatal("version 3 was not kept")
		}
		if _, err := s.GetInvoice(ctx, inv.ID); err != nil {
			t.Fatal(err)
		}
		if page, err := s.ListInvoices(ctx, billing.InvoiceQuery{}); err != nil || len(page.Invoices) != 2 {
			t.Fatalf("list after lifting = %+v, %v", page, err)
		}

		// A restriction for a patient without an account yet holds when the account follows.
		later := "0f8fad5b-d9cb-469f-a165-70867728950e"
		setConfidentiality(t, store, later, true, 2)
		if _, err := s.CreateAccount(ctxAs("svc:billing"), billing.CreateAccountRequest{PatientID: later}); err != nil {
			t.Fatal(err)
		}
		_, err = s.ListAccounts(ctx, billing.AccountQuery{PatientID: later})
		wantKind(t, err, errs.Restricted)

		// Bad input to the consumer's side is refused.
		for _, c := range []billing.ConfidentialityChange{{PatientID: "nope", Version: 1}, {PatientID: pid, Version: 0}} {
			if _, err := store.RecordConfidentiality(context.Background(), c); errs.KindOf(err) != errs.InvalidArgument {
				t.Errorf("RecordConfidentiality(%+v) = %v; want invalid_argument", c, err)
			}
		}
	})
}
