package kafkatransport

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/IBM/sarama"
	"github.com/go-kit/log"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
)

// BillingCommands are the operations of the billing.commands topic, driving the billing
// endpoint set (the same endpoints, and so the same middleware, as REST and gRPC):
//
//	CreateInvoice  value: the POST /invoices body;  headers: idempotency-key
//	IssueInvoice   no value (or {});  headers: id
//	RecordPayment  value: the POST /invoices/{id}/payments body;  headers: id, idempotency-key
//	VoidInvoice    no value (or {});  headers: id
//
// Replies carry the REST status and body: 201 and the invoice for a create, 200 and the
// invoice otherwise.
func BillingCommands(set billing.Set) map[string]Command {
	ok := func(_ context.Context, resp any) (int, any) { return http.StatusOK, resp }
	return map[string]Command{
		billing.MethodCreateInvoice: {
			Endpoint: set.CreateInvoiceEndpoint,
			Decode: func(_ context.Context, msg *sarama.ConsumerMessage) (any, error) {
				key, err := IdempotencyKey(msg)
				if err != nil {
					return nil, err
				}
				req, err := Body[billing.CreateInvoiceRequest](msg)
				req.IdempotencyKey = key
				return req, err
			},
			Encode: func(_ context.Context, resp any) (int, any) { return http.StatusCreated, resp },
		},
		billing.MethodIssueInvoice: {
			Endpoint: set.IssueInvoiceEndpoint,
			Decode: func(_ context.Context, msg *sarama.ConsumerMessage) (any, error) {
				id, err := PathParam(msg, "id")
				if err != nil {
					return nil, err
				}
				return billing.IssueInvoiceRequest{ID: id}, NoBody(msg)
			},
			Encode: ok,
		},
		billing.MethodRecordPayment: {
			Endpoint: set.RecordPaymentEndpoint,
			Decode: func(_ context.Context, msg *sarama.ConsumerMessage) (any, error) {
				id, err := PathParam(msg, "id")
				if err != nil {
					return nil, err
				}
				key, err := IdempotencyKey(msg)
				if err != nil {
					return nil, err
				}
				req, err := Body[billing.PaymentRequest](msg)
				req.InvoiceID, req.IdempotencyKey = id, key
				return req, err
			},
			Encode: ok,
		},
		billing.MethodVoidInvoice: {
			Endpoint: set.VoidInvoiceEndpoint,
			Decode: func(_ context.Context, msg *sarama.ConsumerMessage) (any, error) {
				id, err := PathParam(msg, "id")
				if err != nil {
					return nil, err
				}
				return billing.VoidInvoiceRequest{ID: id}, NoBody(msg)
			},
			Encode: ok,
		},
	}
}

// BillingTopics are the topics the billing service needs: its event topic, its command
// topic and that topic's dead letters, billing.replies as a ready reply topic, the shared
// audit topic, and the patient topic it consumes with that topic's dead letters.
func BillingTopics(partitions int32, replication int16) []Topic {
	return topicsOf(partitions, replication, billing.TopicEvents, billing.TopicCommands,
		billing.TopicCommands+DLQSuffix, "billing"+RepliesSuffix, TopicAudit,
		patient.TopicEvents, patient.TopicEvents+DLQSuffix)
}

// BillingPatientGroup is the consumer group of billing's consumer of the patient topic.
const BillingPatientGroup = "billing-patient"

// maxEventID bounds an event id: a UUID, with room for other producers' ids.
const maxEventID = 200

// BillingConfidentiality is where billing's consumer of the patient topic keeps each
// patient's confidentiality (billing.Store.RecordConfidentiality): newer versions only.
type BillingConfidentiality interface {
	RecordConfidentiality(ctx context.Context, c billing.ConfidentialityChange) (bool, error)
}

// BillingPatientEndpoint is what billing does with a PatientEvent. Every event that carries a
// confidentiality (every version event of a current patient service) has it kept with the
// event's version in conf (a restricted patient's data is then refused on billing's own
// routes; an older event, late or redelivered, changes nothing). A PATIENT_CREATED also opens
// the patient's account (idempotently, recording the event id in the same transaction, so an
// account follows every patient even when the patient service's gRPC call failed, and a
// redelivered event creates nothing twice). An event without an id (or with one that is not
// storable text), with a bad patient id, or with an unknown confidentiality or no version
// beside it is invalid: dead-lettered. The context acts as svc:billing (AsService). A nil
// conf keeps no confidentiality (tests of the accounts alone).
func BillingPatientEndpoint(svc billing.Service, conf BillingConfidentiality) func(ctx context.Context, req any) (any, error) {
	return func(ctx context.Context, req any) (any, error) {
		ev, ok := req.(*eventsv1.PatientEvent)
		if !ok {
			return nil, errs.Wrap(errs.Internal, "internal error", fmt.Errorf("kafkatransport: patient event %T", req))
		}
		pid := ev.GetPatientId()
		if pid == "" {
			pid = ev.GetPatient().GetId()
		}
		if level := ev.GetConfidentiality(); level != "" && conf != nil {
			if level != billing.ConfidentialityNormal && level != billing.ConfidentialityRestricted {
				return nil, errs.Invalid(map[string]string{"confidentiality": "must be normal or restricted"})
			}
			at := time.Now()
			if ev.GetOccurredAt() != nil {
				at = ev.GetOccurredAt().AsTime()
			}
			if _, err := conf.RecordConfidentiality(ctx, billing.ConfidentialityChange{PatientID: pid,
				Restricted: level == billing.ConfidentialityRestricted, Version: ev.GetVersion(), At: at}); err != nil {
				return nil, err
			}
		}
		if ev.GetEventType() != patient.EventCreated {
			return nil, nil
		}
		if id := ev.GetEventId(); id == "" || len(id) > maxEventID || !storableText(id) {
			return nil, errs.Invalid(map[string]string{"event_id": "is required (at most 200 characters of text without NUL)"})
		}
		_, err := svc.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: pid, EventID: ev.GetEventId()})
		return nil, err
	}
}

// NewBillingPatientSubscriber returns the Subscriber of billing's consumer of the patient
// topic: protobuf PatientEvents, handled as svc:billing by BillingPatientEndpoint (with conf
// keeping each patient's confidentiality); poison
// messages (not a PatientEvent, or an invalid one) go to patient.dlq through p.
// Further options (SubscriberResume: the offsets billing's database has applied) come last.
func NewBillingPatientSubscriber(svc billing.Service, conf BillingConfidentiality, p sarama.SyncProducer, m *Metrics, logger log.Logger, opts ...SubscriberOption) *Subscriber {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	return NewSubscriber(BillingPatientEndpoint(svc, conf),
		DecodeEvent(func() *eventsv1.PatientEvent { return new(eventsv1.PatientEvent) }), nil,
		append([]SubscriberOption{SubscriberBefore(RequestIDToContext, AsService("billing")),
			SubscriberErrorHandler(LogErrorHandler(logger)),
			SubscriberDeadLetter(p),
			SubscriberMetrics(m, BillingPatientGroup),
			SubscriberLogger(logger),
		}, opts...)...,
	)
}
