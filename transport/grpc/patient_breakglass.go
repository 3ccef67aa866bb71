package grpctransport

import (
	"context"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
	patientv1 "github.com/pms/pms/proto/pms/patient/v1"
)

// SetPatientConfidentiality implements patientv1.PatientServiceServer.
func (s *patientServer) SetPatientConfidentiality(ctx context.Context, r *patientv1.SetPatientConfidentialityRequest) (*patientv1.Patient, error) {
	return serve[*patientv1.Patient](ctx, s.confidentiality, r)
}

// BreakGlass implements patientv1.PatientServiceServer.
func (s *patientServer) BreakGlass(ctx context.Context, r *patientv1.BreakGlassRequest) (*patientv1.BreakGlassGrant, error) {
	return serve[*patientv1.BreakGlassGrant](ctx, s.breakGlass, r)
}

// ListBreakGlassGrants implements patientv1.PatientServiceServer.
func (s *patientServer) ListBreakGlassGrants(ctx context.Context, r *patientv1.ListBreakGlassGrantsRequest) (*patientv1.ListBreakGlassGrantsResponse, error) {
	return serve[*patientv1.ListBreakGlassGrantsResponse](ctx, s.breakGlassGrants, r)
}

// ErasePatient implements patientv1.PatientServiceServer.
func (s *patientServer) ErasePatient(ctx context.Context, r *patientv1.ErasePatientRequest) (*patientv1.PatientErasure, error) {
	return serve[*patientv1.PatientErasure](ctx, s.erase, r)
}

func eraseToPB(r patient.EraseRequest) *patientv1.ErasePatientRequest {
	return &patientv1.ErasePatientRequest{Id: r.ID, Reason: r.Reason}
}

func eraseFromPB(r *patientv1.ErasePatientRequest) patient.EraseRequest {
	return patient.EraseRequest{ID: r.GetId(), Reason: r.GetReason()}
}

func erasureToPB(e patient.Erasure) *patientv1.PatientErasure {
	return &patientv1.PatientErasure{PatientId: e.PatientID, Mrn: e.MRN, ErasedAt: toTimestamp(e.ErasedAt),
		ErasedBy: e.ErasedBy, Role: e.Role, Reason: e.Reason, RequestId: e.RequestID}
}

func erasureFromPB(e *patientv1.PatientErasure) patient.Erasure {
	return patient.Erasure{PatientID: e.GetPatientId(), MRN: e.GetMrn(), ErasedAt: fromTimestamp(e.GetErasedAt()),
		ErasedBy: e.GetErasedBy(), Role: e.GetRole(), Reason: e.GetReason(), RequestID: e.GetRequestId()}
}

// The conversions of break-glass, shared by the server binding and the client.

func confidentialityToPB(r patient.ConfidentialityRequest) *patientv1.SetPatientConfidentialityRequest {
	return &patientv1.SetPatientConfidentialityRequest{Id: r.ID, Confidentiality: r.Confidentiality}
}

func confidentialityFromPB(r *patientv1.SetPatientConfidentialityRequest) patient.ConfidentialityRequest {
	return patient.ConfidentialityRequest{ID: r.GetId(), Confidentiality: r.GetConfidentiality()}
}

func breakGlassToPB(r patient.BreakGlassRequest) *patientv1.BreakGlassRequest {
	return &patientv1.BreakGlassRequest{Id: r.ID, Reason: r.Reason}
}

func breakGlassFromPB(r *patientv1.BreakGlassRequest) patient.BreakGlassRequest {
	return patient.BreakGlassRequest{ID: r.GetId(), Reason: r.GetReason()}
}

func grantToPB(g patient.Grant) *patientv1.BreakGlassGrant {
	return &patientv1.BreakGlassGrant{
		Id:        g.ID,
		PatientId: g.PatientID,
		UserId:    g.UserID,
		Role:      g.Role,
		Reason:    g.Reason,
		RequestId: g.RequestID,
		CreatedAt: toTimestamp(g.CreatedAt),
		ExpiresAt: toTimestamp(g.ExpiresAt),
	}
}

func grantFromPB(g *patientv1.BreakGlassGrant) patient.Grant {
	return patient.Grant{
		ID:        g.GetId(),
		PatientID: g.GetPatientId(),
		UserID:    g.GetUserId(),
		Role:      g.GetRole(),
		Reason:    g.GetReason(),
		RequestID: g.GetRequestId(),
		CreatedAt: fromTimestamp(g.GetCreatedAt()),
		ExpiresAt: fromTimestamp(g.GetExpiresAt()),
	}
}

func grantReviewToPB(g patient.GrantReview) *patientv1.BreakGlassGrant {
	pb := grantToPB(g.Grant)
	pb.Reads = mapSlice(g.Reads, auditEntryToPB)
	return pb
}

func grantReviewFromPB(g *patientv1.BreakGlassGrant) patient.GrantReview {
	reads := mapSlice(g.GetReads(), auditEntryFromPB)
	if reads == nil {
		reads = []patient.AuditEntry{}
	}
	return patient.GrantReview{Grant: grantFromPB(g), Reads: reads}
}

func grantQueryToPB(q patient.GrantQuery) *patientv1.ListBreakGlassGrantsRequest {
	return &patientv1.ListBreakGlassGrantsRequest{
		PatientId: q.PatientID,
		Actor:     q.UserID,
		From:      toTimestamp(q.From),
		To:        toTimestamp(q.To),
		Limit:     int32Of(q.Limit),
	}
}

// grantQueryFromPB refuses an out-of-range Timestamp with the contract's field names.
func grantQueryFromPB(r *patientv1.ListBreakGlassGrantsRequest) (patient.GrantQuery, error) {
	var f errs.Fields
	q := patient.GrantQuery{
		PatientID: r.GetPatientId(),
		UserID:    r.GetActor(),
		From:      timestampField(&f, "from", r.GetFrom()),
		To:        timestampField(&f, "to", r.GetTo()),
		Limit:     int(r.GetLimit()),
	}
	return q, f.Err()
}

func grantsToPB(r patient.GrantsResponse) *patientv1.ListBreakGlassGrantsResponse {
	return &patientv1.ListBreakGlassGrantsResponse{Grants: mapSlice(r.Grants, grantReviewToPB)}
}

func grantsFromPB(r *patientv1.ListBreakGlassGrantsResponse) patient.GrantsResponse {
	return patient.GrantsResponse{Grants: mapSlice(r.GetGrants(), grantReviewFromPB)}
}
