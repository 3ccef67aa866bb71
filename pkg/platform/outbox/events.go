package outbox

import (
	"context"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/audit"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TopicAudit is the topic every service's audit entries go to (API.md, "Kafka").
const TopicAudit = "audit"

// ContentTypeProtobuf is the content-type header of every event.
const ContentTypeProtobuf = "application/x-protobuf"

// EventHeaders are the headers every event carries: content-type, event-type, event-id and
// x-request-id (omitted when there is no request).
func EventHeaders(eventType, eventID, requestID string) map[string]string {
	h := map[string]string{"content-type": ContentTypeProtobuf, "event-type": eventType, "event-id": eventID}
	if requestID != "" {
		h["x-request-id"] = requestID
	}
	return h
}

// AuditEventType is the event-type header of audit events.
const AuditEventType = "AUDIT_ENTRY"

// AuditHook returns the audit writer's AfterBatch hook (audit.Options.AfterBatch) that
// writes one AuditEvent per entry to the audit topic through ob, inside the batch's own
// transaction: an entry is published if and only if it was committed to the log. Set
// audit.Options.AfterCommit to ob.Wake beside it, so the relay publishes each batch at once. The key is
// the entry's subject (a patient, invoice or user id) or, for entries without one (a
// search), its actor.
func AuditHook(ob *Outbox, service string) func(ctx context.Context, tx *sqlx.Tx, entries []audit.Entry) error {
	return func(ctx context.Context, tx *sqlx.Tx, entries []audit.Entry) error {
		msgs := make([]Message, len(entries))
		for i, e := range entries {
			ev := &eventsv1.AuditEvent{
				EventId: e.ID, Service: service, At: timestamppb.New(e.At), Actor: e.Actor, Role: e.Role,
				Action: e.Action, SubjectId: e.SubjectID, Outcome: e.Outcome, RequestId: e.RequestID,
				ClientAddress: e.ClientAddress, Seq: e.Seq, Hash: e.Hash,
			}
			b, err := proto.Marshal(ev)
			if err != nil {
				return err
			}
			key := e.SubjectID
			if key == "" {
				key = e.Actor
			}
			msgs[i] = Message{Topic: TopicAudit, Key: key, Value: b, Headers: EventHeaders(AuditEventType, e.ID, e.RequestID)}
		}
		return ob.Add(ctx, tx, msgs...)
	}
}
