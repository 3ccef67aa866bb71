package patient

import (
	"time"

	"github.com/google/uuid"
	"github.com/pms/pms/pkg/platform/outbox"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Topics of the patient service (API.md, "Kafka").
const (
	// TopicEvents carries a PatientEvent for every create, update and delete, keyed by
	// patient id.
	TopicEvents = "patient"
	// TopicCommands carries commands from outside systems, served by the same endpoints
	// as REST and gRPC.
	TopicCommands = "patient.commands"
)

// Event types of a PatientEvent (the earlier implementation's names).
const (
	EventCreated = "PATIENT_CREATED"
	EventUpdated = "PATIENT_UPDATED"
	EventDeleted = "PATIENT_DELETED"
)

var eventTypeOfChange = map[string]string{
	ChangeCreated: EventCreated,
	ChangeUpdated: EventUpdated,
	ChangeDeleted: EventDeleted,
}

// patientEvent is the outbox message announcing change (created, updated, deleted) of p,
// which is the record as it is after the change.
func patientEvent(p Patient, change string, m changeMeta) (outbox.Message, error) {
	typ := eventTypeOfChange[change]
	ev := &eventsv1.PatientEvent{
		PatientId:  p.ID,
		Name:       p.Name,
		Email:      p.Email,
		EventType:  typ,
		EventId:    uuid.NewString(),
		OccurredAt: timestamppb.New(m.At),
		Version:    p.Version,
		RequestId:  m.RequestID,
		Actor:      m.Actor,
		Patient: &eventsv1.PatientRecord{
			Id: p.ID, Mrn: p.MRN, Name: p.Name, Email: p.Email, Address: p.Address,
			DateOfBirth: p.DateOfBirth, RegisteredDate: p.RegisteredDate, Version: p.Version,
			CreatedAt: ts(p.CreatedAt), UpdatedAt: ts(p.UpdatedAt),
		},
	}
	if change == ChangeDeleted {
		ev.Patient.DeletedAt = ts(m.At)
	}
	b, err := proto.Marshal(ev)
	if err != nil {
		return outbox.Message{}, err
	}
	return outbox.Message{
		Topic: TopicEvents, Key: p.ID, Value: b,
		Headers: outbox.EventHeaders(typ, ev.EventId, m.RequestID),
	}, nil
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
