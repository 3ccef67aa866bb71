package billing

import (
	"time"

	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/ids"
	"github.com/pms/pms/pkg/platform/outbox"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Topics of the billing service (API.md, "Kafka").
const (
	// TopicEvents carries a BillingEvent for every change, keyed by patient id, so one
	// patient's events keep their order.
	TopicEvents = "billing"
	// TopicCommands carries commands from outside systems, served by the same endpoints as
	// REST and gRPC.
	TopicCommands = "billing.commands"
	// ConsumerPatientEvents is the processed_events name of billing's consumer of the patient
	// topic: the event ids it has applied.
	ConsumerPatientEvents = "billing/patient"
)

// Event types of a BillingEvent.
const (
	EventAccountCreated  = "BILLING_ACCOUNT_CREATED"
	EventInvoiceCreated  = "INVOICE_CREATED"
	EventInvoiceIssued   = "INVOICE_ISSUED"
	EventPaymentRecorded = "PAYMENT_RECORDED"
	EventInvoicePaid     = "INVOICE_PAID"
	EventInvoiceVoided   = "INVOICE_VOIDED"
)

// accountEvent is the outbox message announcing that account a was opened.
func accountEvent(a Account, m changeMeta) (outbox.Message, error) {
	return eventMessage(&eventsv1.BillingEvent{
		EventType: EventAccountCreated, PatientId: a.PatientID, AccountId: a.ID, Status: a.Status,
	}, m)
}

// invoiceEvent is the outbox message of event typ about inv (as it is after the change);
// prev is its status before (empty for a new invoice) and pay the payment recorded, if any.
func invoiceEvent(typ string, inv Invoice, prev Status, pay *Payment, m changeMeta) (outbox.Message, error) {
	ev := &eventsv1.BillingEvent{
		EventType: typ, PatientId: inv.PatientID, AccountId: inv.AccountID, InvoiceId: inv.ID,
		Currency: inv.Currency, Subtotal: inv.Subtotal, AmountPaid: inv.AmountPaid, AmountDue: inv.AmountDue,
		Status: string(inv.Status), PreviousStatus: string(prev),
	}
	if pay != nil {
		ev.Amount, ev.PaymentId, ev.PaymentMethod = pay.Amount, pay.ID, pay.Method
	}
	return eventMessage(ev, m)
}

// invoiceChangeEvents are the events of one change of an invoice from cur to next (with
// pay recorded, when not nil), in the order they happened: a payment, then the invoice
// being paid by it; an issue, then (for an invoice of zero) its being paid; a void.
func invoiceChangeEvents(cur, next Invoice, pay *Payment, m changeMeta) ([]outbox.Message, error) {
	var types []string
	var paid *Payment
	switch {
	case pay != nil:
		types, paid = []string{EventPaymentRecorded}, pay
	case cur.Status == StatusDraft && (next.Status == StatusOpen || next.Status == StatusPaid):
		types = []string{EventInvoiceIssued}
	case next.Status == StatusVoid && cur.Status != StatusVoid:
		types = []string{EventInvoiceVoided}
	}
	if next.Status == StatusPaid && cur.Status != StatusPaid {
		types = append(types, EventInvoicePaid)
	}
	msgs := make([]outbox.Message, 0, len(types))
	for _, typ := range types {
		var p *Payment
		if typ == EventPaymentRecorded || typ == EventInvoicePaid {
			p = paid
		}
		msg, err := invoiceEvent(typ, next, cur.Status, p, m)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

// eventMessage fills in what every event carries (id, time, request, actor) and makes the
// outbox message, keyed by patient id.
func eventMessage(ev *eventsv1.BillingEvent, m changeMeta) (outbox.Message, error) {
	ev.EventId = ids.Ordered()
	ev.OccurredAt = timestamppb.New(m.At.In(time.UTC))
	ev.RequestId, ev.Actor = m.RequestID, m.Actor
	b, err := proto.Marshal(ev)
	if err != nil {
		return outbox.Message{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	return outbox.Message{
		Topic: TopicEvents, Key: ev.PatientId, Value: b,
		Headers: outbox.EventHeaders(ev.EventType, ev.EventId, m.RequestID),
	}, nil
}
