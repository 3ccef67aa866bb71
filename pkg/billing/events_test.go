package billing_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
)

// outboxEvents returns the BillingEvents in d's outbox, in the order they were written.
func outboxEvents(t *testing.T, d *db.DB) []*eventsv1.BillingEvent {
	t.Helper()
	var rows []struct {
		Key   string `db:"msg_key"`
		Value []byte `db:"value"`
	}
	if err := d.SelectContext(context.Background(), &rows, d.Rebind(`SELECT msg_key, value FROM outbox WHERE topic = ? ORDER BY id`), billing.TopicEvents); err != nil {
		t.Fatal(err)
	}
	out := make([]*eventsv1.BillingEvent, len(rows))
	for i, r := range rows {
		ev := new(eventsv1.BillingEvent)
		if err := proto.Unmarshal(r.Value, ev); err != nil {
			t.Fatal(err)
		}
		if r.Key != ev.PatientId || ev.EventId == "" || ev.OccurredAt == nil {
			t.Fatalf("event %d: key %q, %v", i, r.Key, ev)
		}
		out[i] = ev
	}
	return out
}

// TestEventsWithEveryChange: each change writes its BillingEvents into the outbox in its own
// transaction, with the figures a consumer folds (subtotal on issue and void, amount on
// payment, previous status on void); refused changes write none.
func TestEventsWithEveryChange(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("u-1")
		pid := account(t, s)
		inv, err := s.CreateInvoice(ctx, invoiceReq(pid, "USD"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.IssueInvoice(ctx, inv.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.IssueInvoice(ctx, inv.ID); err == nil {
			t.Fatal("issued twice")
		}
		if _, err := s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 10000, Method: "card"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 17100, Method: "cash"}); err != nil {
			t.Fatal(err)
		}
		// A second invoice voided once issued, a third voided as a draft, a fourth of zero.
		inv2, _ := s.CreateInvoice(ctx, invoiceReq(pid, "USD"))
		_, _ = s.IssueInvoice(ctx, inv2.ID)
		_, _ = s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv2.ID, Amount: 100, Method: "card"})
		if _, err := s.VoidInvoice(ctx, inv2.ID); err != nil {
			t.Fatal(err)
		}
		inv3, _ := s.CreateInvoice(ctx, invoiceReq(pid, "EUR"))
		if _, err := s.VoidInvoice(ctx, inv3.ID); err != nil {
			t.Fatal(err)
		}
		inv4, err := s.CreateInvoice(ctx, invoiceReq(pid, "JPY", billing.LineInput{Description: "Free", Quantity: 1, UnitAmount: 0}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.IssueInvoice(ctx, inv4.ID); err != nil {
			t.Fatal(err)
		}

		type want struct {
			typ, invoice, status, prev string
			subtotal, amount, paid     int64
		}
		wants := []want{
			{billing.EventAccountCreated, "", "active", "", 0, 0, 0},
			{billing.EventInvoiceCreated, inv.ID, "draft", "", 27100, 0, 0},
			{billing.EventInvoiceIssued, inv.ID, "open", "draft", 27100, 0, 0},
			{billing.EventPaymentRecorded, inv.ID, "open", "open", 27100, 10000, 10000},
			{billing.EventPaymentRecorded, inv.ID, "paid", "open", 27100, 17100, 27100},
			{billing.EventInvoicePaid, inv.ID, "paid", "open", 27100, 17100, 27100},
			{billing.EventInvoiceCreated, inv2.ID, "draft", "", 27100, 0, 0},
			{billing.EventInvoiceIssued, inv2.ID, "open", "draft", 27100, 0, 0},
			{billing.EventPaymentRecorded, inv2.ID, "open", "open", 27100, 100, 100},
			{billing.EventInvoiceVoided, inv2.ID, "void", "open", 27100, 0, 100},
			{billing.EventInvoiceCreated, inv3.ID, "draft", "", 27100, 0, 0},
			{billing.EventInvoiceVoided, inv3.ID, "void", "draft", 27100, 0, 0},
			{billing.EventInvoiceCreated, inv4.ID, "draft", "", 0, 0, 0},
			{billing.EventInvoiceIssued, inv4.ID, "paid", "draft", 0, 0, 0},
			{billing.EventInvoicePaid, inv4.ID, "paid", "draft", 0, 0, 0},
		}
		evs := outboxEvents(t, d)
		if len(evs) != len(wants) {
			t.Fatalf("%d events, want %d: %v", len(evs), len(wants), evs)
		}
		seen := map[string]bool{}
		for i, w := range wants {
			ev := evs[i]
			got := want{ev.EventType, ev.InvoiceId, ev.Status, ev.PreviousStatus, ev.Subtotal, ev.Amount, ev.AmountPaid}
			if got != w || ev.PatientId != pid || ev.AccountId == "" || seen[ev.EventId] {
				t.Fatalf("event %d = %+v (%v), want %+v", i, got, ev, w)
			}
			seen[ev.EventId] = true
			if ev.InvoiceId != "" && (ev.Currency == "" || ev.Actor != "u-1" || ev.RequestId == "") {
				t.Fatalf("event %d lacks currency, actor or request id: %v", i, ev)
			}
			if ev.EventType == billing.EventPaymentRecorded && (ev.PaymentId == "" || ev.PaymentMethod == "") {
				t.Fatalf("payment event without its payment: %v", ev)
			}
		}
	})
}

// TestCreateAccountFromEvent: an account opened for a patient event records the event id in
// its transaction: the same event again creates nothing and writes no event, another event
// for the same patient finds the account; and every account event is written once.
func TestCreateAccountFromEvent(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := authz.Service(context.Background(), "billing")
		pid, ev := uuid.NewString(), uuid.NewString()
		a, err := s.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: pid, EventID: ev})
		if err != nil {
			t.Fatal(err)
		}
		for _, again := range []string{ev, ev, uuid.NewString()} {
			b, err := s.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: pid, EventID: again})
			if err != nil || b != a {
				t.Fatalf("again: %v %v, want %v", b, err, a)
			}
		}
		var processed int
		if err := d.GetContext(context.Background(), &processed, `SELECT count(*) FROM processed_events`); err != nil || processed != 2 {
			t.Fatalf("processed events %d (%v), want 2", processed, err)
		}
		if evs := outboxEvents(t, d); len(evs) != 1 || evs[0].EventType != billing.EventAccountCreated || evs[0].Actor != "svc:billing" {
			t.Fatalf("events %v", evs)
		}
		// A bad patient id is invalid (a poison event).
		_, err = s.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: "nope", EventID: uuid.NewString()})
		wantKind(t, err, errs.InvalidArgument)
	})
}

// TestAccountOpenedOnceWhicheverPathFirst: the patient service's call and the patient topic's
// consumer both open a registration's account; whichever comes first, the patient has one
// account, one BILLING_ACCOUNT_CREATED event and one create_account audit entry when the
// consumer's turn is a no-op (issue 20 item 4: the second open costs no audit write), and
// the event id is still recorded as applied. When the consumer opened it, the API call that
// follows still audits its answer (the caller was given the account).
func TestAccountOpenedOnceWhicheverPathFirst(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		consumer := authz.Service(context.Background(), "billing")
		entries := func(pid string) int {
			t.Helper()
			recs, err := s.Audit(ctxAs("u-admin"), audit.Query{SubjectID: pid})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range recs {
				if r.Action == billing.ActionCreateAccount {
					n++
				}
			}
			return n
		}
		accountEvents := func(pid string) int {
			n := 0
			for _, ev := range outboxEvents(t, d) {
				if ev.PatientId == pid && ev.EventType == billing.EventAccountCreated {
					n++
				}
			}
			return n
		}

		// The call first, then the event (the usual order: the call runs right after the 201).
		pid, ev := uuid.NewString(), uuid.NewString()
		a, err := s.CreateAccount(ctxAs("u-clerk"), billing.CreateAccountRequest{PatientID: pid, Name: "N", Email: "e@example.org"})
		if err != nil {
			t.Fatal(err)
		}
		for _, again := range []string{ev, ev} { // and a redelivery
			b, err := s.CreateAccount(consumer, billing.CreateAccountRequest{PatientID: pid, EventID: again})
			if err != nil || b != a {
				t.Fatalf("event after call: %v %v, want %v", b, err, a)
			}
		}
		if n := entries(pid); n != 1 {
			t.Fatalf("call then event: %d create_account entries, want 1", n)
		}
		if n := accountEvents(pid); n != 1 {
			t.Fatalf("call then event: %d account events, want 1", n)
		}
		var applied int
		if err := d.GetContext(context.Background(), &applied, d.Rebind(`SELECT count(*) FROM processed_events WHERE event_id = ?`), ev); err != nil || applied != 1 {
			t.Fatalf("event applied %d times (%v), want 1", applied, err)
		}

		// The event first, then the call.
		pid2 := uuid.NewString()
		a2, err := s.CreateAccount(consumer, billing.CreateAccountRequest{PatientID: pid2, EventID: uuid.NewString()})
		if err != nil {
			t.Fatal(err)
		}
		if n := entries(pid2); n != 1 {
			t.Fatalf("event first: %d create_account entries, want 1", n)
		}
		b2, err := s.CreateAccount(ctxAs("u-clerk"), billing.CreateAccountRequest{PatientID: pid2})
		if err != nil || b2 != a2 {
			t.Fatalf("call after event: %v %v, want %v", b2, err, a2)
		}
		if n := accountEvents(pid2); n != 1 {
			t.Fatalf("event then call: %d account events, want 1", n)
		}
		var accounts int
		if err := d.GetContext(context.Background(), &accounts, d.Rebind(`SELECT count(*) FROM accounts WHERE patient_id IN (?, ?)`), pid, pid2); err != nil || accounts != 2 {
			t.Fatalf("accounts %d (%v), want one each", accounts, err)
		}
	})
}
