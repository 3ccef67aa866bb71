package billing

import (
	"context"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
)

// ConfidentialityTable keeps each patient's confidentiality as the patient topic last said it
// (issue 17, docs/audit.md "Billing and confidentiality").
const ConfidentialityTable = "patient_confidentiality"

// Confidentiality levels a PatientEvent carries (the patient service's words).
const (
	ConfidentialityNormal     = "normal"
	ConfidentialityRestricted = "restricted"
)

// ErrRestricted refuses a restricted patient's accounts and invoices on billing's own routes.
// They are served by the patient service, which takes the caller's emergency grant
// (break-glass) and records the disclosure in the patient's access log; the message says
// where, so a clinician in an emergency is not left at a dead end.
var ErrRestricted = errs.New(errs.Restricted, "this patient's record is restricted: read its billing account and invoices through "+
	"/api/patients/{id}/billing-account and /api/patients/{id}/invoices, with an emergency grant (POST /api/patients/{id}/break-glass)")

// ConfidentialityChange is what a PatientEvent says of a patient's confidentiality: whether
// the record is restricted as of its Version.
type ConfidentialityChange struct {
	PatientID  string
	Restricted bool
	Version    int64
	At         time.Time
}

// RecordConfidentiality keeps c unless billing already holds the patient's confidentiality
// of a version at least as new, so a late, older event (or a redelivery) cannot lift a newer
// restriction. It reports whether c was kept. Billing's consumer of the patient topic calls
// it for every event that carries a confidentiality.
func (s *Store) RecordConfidentiality(ctx context.Context, c ConfidentialityChange) (bool, error) {
	pid, err := ParseID(c.PatientID)
	if err != nil {
		return false, errs.Invalid(map[string]string{"patientId": "must be a UUID"})
	}
	if c.Version < 1 {
		return false, errs.Invalid(map[string]string{"version": "must be at least 1"})
	}
	if c.At.IsZero() {
		c.At = time.Now()
	}
	n, err := db.Affected(s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO `+ConfidentialityTable+` (patient_id, restricted, version, changed_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (patient_id) DO UPDATE SET restricted = excluded.restricted, version = excluded.version, changed_at = excluded.changed_at
		WHERE `+ConfidentialityTable+`.version < excluded.version`), pid, c.Restricted, c.Version, s.db.Time(c.At.UTC())))
	return n == 1, err
}

// restrictedPatients returns which of patientIDs billing holds as restricted.
func (s *Store) restrictedPatients(ctx context.Context, patientIDs ...string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(patientIDs) == 0 {
		return out, nil
	}
	query, args, err := sqlx.In(`SELECT patient_id FROM `+ConfidentialityTable+` WHERE restricted AND patient_id IN (?)`, patientIDs)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, "internal error", err)
	}
	var ids []string
	if err := s.db.SelectContext(ctx, &ids, s.db.Rebind(query), args...); err != nil {
		return nil, db.Classify(err)
	}
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// checkedByPatient reports whether the patient service has already checked the caller's
// access to the call's patient (its billing reads, under the user's break-glass grant, with
// the disclosure recorded there): only its calls are served a restricted patient's data.
// Transports believe the claim only from the patient service's identity (authz.CheckedBy).
func checkedByPatient(ctx context.Context) bool { return authz.CheckedBy(ctx) == "patient" }

// refuseRestricted is ErrRestricted when patient pid is restricted and the caller did not
// come through the patient service's access check; nil otherwise (and for an empty pid).
func (s *service) refuseRestricted(ctx context.Context, pid string) error {
	if pid == "" || checkedByPatient(ctx) {
		return nil
	}
	r, err := s.store.restrictedPatients(ctx, pid)
	if err != nil {
		return err
	}
	if r[pid] {
		return ErrRestricted
	}
	return nil
}

// withoutRestricted leaves the invoices of restricted patients out of invs (a list that did
// not name its patient), unless the patient service checked the caller's access, and audits
// each patient left out as a denied read (ActionSearchInvoices, the patient as subject).
func (s *service) withoutRestricted(ctx context.Context, invs []Invoice) ([]Invoice, error) {
	if len(invs) == 0 || checkedByPatient(ctx) {
		return invs, nil
	}
	ids := make([]string, 0, len(invs))
	seen := map[string]bool{}
	for _, inv := range invs {
		if !seen[inv.PatientID] {
			seen[inv.PatientID] = true
			ids = append(ids, inv.PatientID)
		}
	}
	restricted, err := s.store.restrictedPatients(ctx, ids...)
	if err != nil || len(restricted) == 0 {
		return invs, err
	}
	kept := make([]Invoice, 0, len(invs))
	for _, inv := range invs {
		if !restricted[inv.PatientID] {
			kept = append(kept, inv)
		}
	}
	// The refusals are written concurrently, so the audit writer commits them in one batch
	// rather than one commit after another.
	var wg sync.WaitGroup
	failed := make([]error, len(ids))
	for i, id := range ids {
		if restricted[id] {
			wg.Go(func() { failed[i] = s.recorder().Record(ctx, ActionSearchInvoices, id, ErrRestricted) })
		}
	}
	wg.Wait()
	for _, err := range failed {
		if errs.KindOf(err) == errs.Canceled {
			return nil, err // the caller went away: not the audit log's failure
		}
		if err != nil {
			return nil, errs.Wrap(errs.Unavailable, "the audit log is unavailable", err)
		}
	}
	return kept, nil
}
