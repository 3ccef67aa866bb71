package kafkatransport

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/transport/wire"
)

// PatientCommands are the operations of the patient.commands topic, driving the patient
// endpoint set (the same endpoints, and so the same middleware, as REST and gRPC):
//
//	CreatePatient  value: the POST /patients body;  headers: idempotency-key,
//	               x-confirm-not-duplicate, prefer (duplicate-check=strict)
//	UpdatePatient  value: the PUT /patients/{id} body;  headers: id, if-match
//	DeletePatient  no value;  headers: id, if-match
//
// Replies carry the REST status and, for a change, the record without its PHI (patientReply):
// 201, 200, 204. A reply topic is kept by the broker and cannot be erased, so a reply names
// the record (id, MRN, version) and the caller reads the PHI over the audited API; the
// replies stored for idempotent repeats are the same.
func PatientCommands(set patient.Set) map[string]Command {
	return map[string]Command{
		patient.MethodCreate: {
			Endpoint: set.CreateEndpoint,
			Decode: func(_ context.Context, msg *sarama.ConsumerMessage) (any, error) {
				key, err := IdempotencyKey(msg)
				if err != nil {
					return nil, err
				}
				confirm, err := wire.ConfirmNotDuplicate(headerValues(msg, strings.ToLower(wire.HeaderConfirmNotDuplicate)))
				if err != nil {
					return nil, err
				}
				check, err := wire.DuplicateCheck(headerValues(msg, strings.ToLower(wire.HeaderPrefer)))
				if err != nil {
					return nil, err
				}
				req, err := Body[patient.CreateRequest](msg)
				req.IdempotencyKey = key
				req.ConfirmNotDuplicate = confirm
				req.DuplicateCheck = check
				return req, err
			},
			Encode: func(_ context.Context, resp any) (int, any) { return http.StatusCreated, replyOf(resp) },
		},
		patient.MethodUpdate: {
			Endpoint: set.UpdateEndpoint,
			Decode: func(_ context.Context, msg *sarama.ConsumerMessage) (any, error) {
				id, err := PathParam(msg, "id")
				if err != nil {
					return nil, err
				}
				ifMatch, err := IfMatch(msg)
				if err != nil {
					return nil, err
				}
				confirm, err := wire.ConfirmNotDuplicate(headerValues(msg, strings.ToLower(wire.HeaderConfirmNotDuplicate)))
				if err != nil {
					return nil, err
				}
				b, err := Body[patient.UpdateBody](msg)
				if err != nil {
					return nil, err
				}
				return b.Request(id, ifMatch, confirm), nil
			},
			Encode: func(_ context.Context, resp any) (int, any) { return http.StatusOK, replyOf(resp) },
		},
		patient.MethodDelete: {
			Endpoint: set.DeleteEndpoint,
			Decode: func(_ context.Context, msg *sarama.ConsumerMessage) (any, error) {
				id, err := PathParam(msg, "id")
				if err != nil {
					return nil, err
				}
				ifMatch, err := IfMatch(msg)
				if err != nil {
					return nil, err
				}
				return patient.DeleteRequest{ID: id, IfMatch: ifMatch}, NoBody(msg)
			},
			Encode: func(context.Context, any) (int, any) { return http.StatusNoContent, nil },
		},
	}
}

// patientReply is a patient command's reply: which record, at which version, never its PHI
// (name, e-mail, address, date of birth), as nothing can erase a reply once on its topic.
type patientReply struct {
	ID              string    `json:"id"`
	MRN             string    `json:"mrn"`
	RegisteredDate  string    `json:"registeredDate"`
	Confidentiality string    `json:"confidentiality"`
	Version         int64     `json:"version"`
	CreatedAt       time.Time `json:"createdAt"`
	UpdatedAt       time.Time `json:"updatedAt"`
	// PossibleDuplicates is a registration's X-Possible-Duplicates (0, left out, when none).
	PossibleDuplicates int `json:"possibleDuplicates,omitempty"`
}

func replyOf(resp any) any {
	p, ok := resp.(patient.Patient)
	if !ok {
		return resp
	}
	return patientReply{ID: p.ID, MRN: p.MRN, RegisteredDate: p.RegisteredDate, Confidentiality: p.Confidentiality,
		Version: p.Version, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, PossibleDuplicates: p.PossibleDuplicates}
}

// PatientTopics are the topics the patient service needs: its event topic, its command
// topic and that topic's dead letters, the shared audit topic, and patient.replies as a
// ready reply topic for callers that have none of their own.
func PatientTopics(partitions int32, replication int16) []Topic {
	return topicsOf(partitions, replication, patient.TopicEvents, patient.TopicCommands,
		patient.TopicCommands+DLQSuffix, "patient"+RepliesSuffix, TopicAudit)
}
