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
