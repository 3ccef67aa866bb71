package audit

import (
	"context"
	"time"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
)

// Record is an audit entry as the contract shows it to an admin reading a service's audit log
// (GET /audit): the chain's sequence and hashes stay inside.
type Record struct {
	ID            string    `json:"id"`
	At            time.Time `json:"at"`
	Actor         string    `json:"actor"`
	Role          string    `json:"role"`
	Action        string    `json:"action"`
	SubjectID     string    `json:"subjectId"`
	Outcome       string    `json:"outcome"`
	RequestID     string    `json:"requestId"`
	ClientAddress string    `json:"clientAddress"`
}

// CheckQuery applies the contract's rules for reading an audit log, the same in every
// service: limit 1..MaxListLimit (0: DefaultListLimit), the subject an id parseID accepts
// (and canonicalises), actor at most 200 characters, to not before from. subjectField is the
// subject's parameter name in errors (patientId, userId, subjectId).
func CheckQuery(q Query, subjectField string, parseID func(string) (string, error)) (Query, error) {
	var bad errs.Fields
	switch {
	case q.Limit == 0:
		q.Limit = DefaultListLimit
	case q.Limit < 1 || q.Limit > MaxListLimit:
		bad.Add("limit", "must be between 1 and 1000")
	}
	if q.SubjectID != "" {
		if id, err := parseID(q.SubjectID); err != nil {
			bad.Add(subjectField, "must be a UUID")
		} else {
			q.SubjectID = id
		}
	}
	if len(q.Actor) > 200 {
		bad.Add("actor", "must be at most 200 characters")
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		bad.Add("to", "must not be before from")
	}
	return q, bad.Err()
}

// Records is List as a reader sees it, its error classified (db.Classify).
func Records(ctx context.Context, d *db.DB, table string, q Query) ([]Record, error) {
	entries, err := List(ctx, d, table, q)
	if err != nil {
		return nil, db.Classify(err)
	}
	out := make([]Record, len(entries))
	for i, e := range entries {
		out[i] = Record{ID: e.ID, At: e.At, Actor: e.Actor, Role: e.Role, Action: e.Action, SubjectID: e.SubjectID,
			Outcome: e.Outcome, RequestID: e.RequestID, ClientAddress: e.ClientAddress}
	}
	return out, nil
}
