package audit

import (
	"context"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/outbox"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Topic is the topic every service's audit entries go to (API.md, "Kafka"). The audit log
// owns its event, as a service owns its own: the outbox only carries it.
const Topic = "audit"

// EventType is the event-type header of audit events.
const EventType = "AUDIT_ENTRY"

// ActionBreakGlass is the action of an emergency access to a restricted record (issue 17);
// its successful entries carry the event-type BreakGlassEventType instead of EventType, so
// a consumer alerting on break-glass need not decode every audit event.
const (
	ActionBreakGlass    = "break_glass"
	BreakGlassEventType = "BREAK_GLASS"
)

// eventType is the event-type header of entry e.
func eventType(e Entry) string {
	if e.Action == ActionBreakGlass && e.Outcome == OutcomeSuccess {
		return BreakGlassEventType
	}
	return EventType
}

// OutboxHook returns the audit writer's AfterBatch hook (Options.AfterBatch) that
// writes one AuditEvent per entry to the audit topic through ob, inside the batch's own
// transaction: an entry is published if and only if it was committed to the log. Set
// Options.AfterCommit to ob.Wake beside it, so the relay publishes each batch at once. The
// services publish through Tail instead, which costs no outbox row per entry; the hook stays
// for a log whose relay has no tail.
func OutboxHook(ob *outbox.Outbox, service string) func(ctx context.Context, tx db.Execer, entries []Entry) error {
	return func(ctx context.Context, tx db.Execer, entries []Entry) error {
		msgs := make([]outbox.Message, len(entries))
		for i, e := range entries {
			m, err := eventMessage(service, e)
			if err != nil {
				return err
			}
			msgs[i] = m
		}
		return ob.Add(ctx, tx, msgs...)
	}
}

// eventMessage is entry e of service's log as its AuditEvent on the audit topic, keyed by
// its subject (a patient, invoice or user id) or, for an entry without one (a search), its
// actor. OutboxHook and Tail publish the same message.
func eventMessage(service string, e Entry) (outbox.Message, error) {
	ev := &eventsv1.AuditEvent{
		EventId: e.ID, Service: service, At: timestamppb.New(e.At), Actor: e.Actor, Role: e.Role,
		Action: e.Action, SubjectId: e.SubjectID, Outcome: e.Outcome, RequestId: e.RequestID,
		ClientAddress: e.ClientAddress, Seq: e.Seq, Hash: e.Hash,
	}
	b, err := proto.Marshal(ev)
	if err != nil {
		return outbox.Message{}, err
	}
	key := e.SubjectID
	if key == "" {
		key = e.Actor
	}
	return outbox.Message{Topic: Topic, Key: key, Value: b, Headers: outbox.EventHeaders(eventType(e), e.ID, e.RequestID)}, nil
}
