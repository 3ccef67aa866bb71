package grpctransport

import (
	"context"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/patient/match"
	patientv1 "github.com/pms/pms/proto/pms/patient/v1"
)

// FindDuplicates implements patientv1.PatientServiceServer.
func (s *patientServer) FindDuplicates(ctx context.Context, r *patientv1.FindDuplicatesRequest) (*patientv1.FindDuplicatesResponse, error) {
	return serve[*patientv1.FindDuplicatesResponse](ctx, s.duplicates, r)
}

func duplicatesToPB(r patient.DuplicatesRequest) *patientv1.FindDuplicatesRequest {
	out := &patientv1.FindDuplicatesRequest{Id: r.ID, Count: int32(min(max(r.Count, -1), patient.MaxDuplicateCount+1)), // #nosec G115 -- clamped
		OnlyCertain: r.OnlyCertain, MinScore: r.MinScore}
	if r.Patient != nil {
		out.Patient = createToPB(*r.Patient)
	}
	return out
}

func duplicatesFromPB(r *patientv1.FindDuplicatesRequest) patient.DuplicatesRequest {
	out := patient.DuplicatesRequest{ID: r.GetId(), Count: int(r.GetCount()), OnlyCertain: r.GetOnlyCertain(), MinScore: r.GetMinScore()}
	if r.GetPatient() != nil {
		p := createFromPB(r.GetPatient())
		p.IdempotencyKey, p.RegisteredDate, p.ConfirmNotDuplicate, p.DuplicateCheck = "", "", nil, ""
		out.Patient = &p
	}
	return out
}

func candidatesToPB(r patient.DuplicatesResponse) *patientv1.FindDuplicatesResponse {
	return &patientv1.FindDuplicatesResponse{Candidates: mapSlice(r.Candidates, func(c patient.Candidate) *patientv1.DuplicateCandidate {
		return &patientv1.DuplicateCandidate{Id: c.ID, Score: c.Score, Grade: c.Grade, Patient: patientToPB(c.Patient),
			Reasons: mapSlice(c.Reasons, func(r match.Reason) *patientv1.MatchReason {
				return &patientv1.MatchReason{Field: r.Field, Level: r.Level, Weight: r.Weight}
			})}
	})}
}

func candidatesFromPB(r *patientv1.FindDuplicatesResponse) patient.DuplicatesResponse {
	out := patient.DuplicatesResponse{Candidates: mapSlice(r.GetCandidates(), func(c *patientv1.DuplicateCandidate) patient.Candidate {
		return patient.Candidate{ID: c.GetId(), Score: c.GetScore(), Grade: c.GetGrade(), Patient: patientFromPB(c.GetPatient()),
			Reasons: mapSlice(c.GetReasons(), func(r *patientv1.MatchReason) match.Reason {
				return match.Reason{Field: r.GetField(), Level: r.GetLevel(), Weight: r.GetWeight()}
			})}
	})}
	if out.Candidates == nil {
		out.Candidates = []patient.Candidate{}
	}
	for i := range out.Candidates {
		if out.Candidates[i].Reasons == nil {
			out.Candidates[i].Reasons = []match.Reason{}
		}
	}
	return out
}
