package patient

import (
	"context"
	"time"

	"github.com/pms/pms/pkg/platform/ids"
	"github.com/pms/pms/pkg/platform/outbox"
	"github.com/pms/pms/pkg/platform/shred"
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
	// EventErased says the record's PHI was erased (POST /patients/{id}/erase) and its data
	// key destroyed: it carries ids only.
	EventErased = "PATIENT_ERASED"
	// EventMerged says the record (the event's key) was merged into patient.merged_into
	// (POST /patients/{survivor}/merge); EventUnmerged that the merge was reversed. Billing
	// moves the duplicate's invoices on them, analytics counts the live patients by them. The
	// merge's reason is free text and stays out of every event.
	EventMerged   = "PATIENT_MERGED"
	EventUnmerged = "PATIENT_UNMERGED"
)

// The fields of a PatientEvent that are sealed with the patient's data key (pkg/platform/shred):
// the PHI. Their names are the additional data binding each sealed value to its field.
const (
	SealedName        = "name"
	SealedEmail       = "email"
	SealedAddress     = "address"
	SealedDateOfBirth = "dateOfBirth"
	// The demographics of issue 19; an identifier's value is bound to "identifier:" + its system.
	SealedFamily = "family"
	SealedGiven  = "given"
	SealedGender = "gender"
	SealedPhone  = "phone"
)

// sealedIdentifier is the additional data binding an identifier's sealed value to its system.
func sealedIdentifier(system string) string { return "identifier:" + system }

var eventTypeOfChange = map[string]string{
	ChangeCreated:  EventCreated,
	ChangeUpdated:  EventUpdated,
	ChangeDeleted:  EventDeleted,
	ChangeMerged:   EventMerged,
	ChangeUnmerged: EventUnmerged,
}

// patientEvent is the outbox message announcing change (created, updated, deleted) of p,
// which is the record as it is after the change. Its PHI — name and e-mail (fields 2 and 3,
// the earlier implementation's) and the record's name, e-mail, address and date of birth — is
// sealed with the patient's data key (seal), so erasing the patient makes every event ever
// published about them unreadable (docs/kafka.md, "Erasure").
func patientEvent(p Patient, change string, m changeMeta, seal *shred.Sealer) (outbox.Message, error) {
	typ := eventTypeOfChange[change]
	ev := &eventsv1.PatientEvent{
		PatientId:  p.ID,
		Name:       seal.Seal(SealedName, p.Name),
		Email:      seal.Seal(SealedEmail, p.Email),
		EventType:  typ,
		EventId:    ids.Ordered(),
		OccurredAt: timestamppb.New(m.At),
		Version:    p.Version,
		RequestId:  m.RequestID,
		Actor:      m.Actor,
		// Every version event says the record's confidentiality, so billing keeps it per
		// patient with the version (docs/audit.md, "Billing and confidentiality").
		Confidentiality: p.Confidentiality,
		Patient: &eventsv1.PatientRecord{
			Id: p.ID, Mrn: p.MRN, Name: seal.Seal(SealedName, p.Name), Email: seal.Seal(SealedEmail, p.Email),
			Address: seal.Seal(SealedAddress, p.Address), DateOfBirth: seal.Seal(SealedDateOfBirth, p.DateOfBirth), RegisteredDate: p.RegisteredDate, Version: p.Version,
			CreatedAt: ts(p.CreatedAt), UpdatedAt: ts(p.UpdatedAt),
			Family: seal.Seal(SealedFamily, p.Family), Gender: seal.Seal(SealedGender, p.Gender), Phone: seal.Seal(SealedPhone, p.Phone),
			MergedInto: p.MergedInto,
		},
	}
	for _, g := range p.Given {
		ev.Patient.Given = append(ev.Patient.Given, seal.Seal(SealedGiven, g))
	}
	for _, id := range clientIdentifiers(p.Identifiers) {
		ev.Patient.Identifiers = append(ev.Patient.Identifiers, &eventsv1.PatientIdentifier{System: id.System, Value: seal.Seal(sealedIdentifier(id.System), id.Value)})
	}
	if change == ChangeDeleted {
		ev.Patient.DeletedAt = ts(m.At)
	}
	if change == ChangeCreated {
		ev.PossibleDuplicates = int32(min(p.PossibleDuplicates, MaxDuplicateCount)) // #nosec G115 -- bounded
	}
	return eventMessage(ev, m)
}

func eventMessage(ev *eventsv1.PatientEvent, m changeMeta) (outbox.Message, error) {
	b, err := proto.Marshal(ev)
	if err != nil {
		return outbox.Message{}, err
	}
	return outbox.Message{
		Topic: TopicEvents, Key: ev.PatientId, Value: b,
		Headers: outbox.EventHeaders(ev.EventType, ev.EventId, m.RequestID),
	}, nil
}

// erasedEvent is the PATIENT_ERASED event of tombstone p: ids, MRN and dates only.
func erasedEvent(p Patient, m changeMeta) (outbox.Message, error) {
	return eventMessage(&eventsv1.PatientEvent{
		PatientId: p.ID, EventType: EventErased, EventId: ids.Ordered(), OccurredAt: timestamppb.New(m.At),
		Version: p.Version, RequestId: m.RequestID, Actor: m.Actor, Confidentiality: p.Confidentiality,
		Patient: &eventsv1.PatientRecord{Id: p.ID, Mrn: p.MRN, RegisteredDate: p.RegisteredDate, Version: p.Version,
			CreatedAt: ts(p.CreatedAt), UpdatedAt: ts(m.At), DeletedAt: ts(m.At)},
	}, m)
}

// OpenEvent returns ev with its sealed fields opened, for a holder of the patient service's
// keys (the service's own tools and tests); shred.ErrShredded once the patient was erased.
func (s *Store) OpenEvent(ctx context.Context, ev *eventsv1.PatientEvent) (*eventsv1.PatientEvent, error) {
	seal, err := s.keys.ForRead(ctx, ev.GetPatientId())
	if err != nil {
		return nil, err
	}
	out := proto.Clone(ev).(*eventsv1.PatientEvent)
	open := func(field string, v *string) {
		if err == nil {
			*v, err = seal.Open(field, *v)
		}
	}
	open(SealedName, &out.Name)
	open(SealedEmail, &out.Email)
	if r := out.Patient; r != nil {
		open(SealedName, &r.Name)
		open(SealedEmail, &r.Email)
		open(SealedAddress, &r.Address)
		open(SealedDateOfBirth, &r.DateOfBirth)
		open(SealedFamily, &r.Family)
		open(SealedGender, &r.Gender)
		open(SealedPhone, &r.Phone)
		for i := range r.Given {
			open(SealedGiven, &r.Given[i])
		}
		for _, id := range r.Identifiers {
			open(sealedIdentifier(id.System), &id.Value)
		}
	}
	return out, err
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
