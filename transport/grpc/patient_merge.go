package grpctransport

import (
	"context"

	"github.com/pms/pms/pkg/patient"
	patientv1 "github.com/pms/pms/proto/pms/patient/v1"
)

// MergePatients implements patientv1.PatientServiceServer.
func (s *patientServer) MergePatients(ctx context.Context, r *patientv1.MergePatientsRequest) (*patientv1.PatientMerge, error) {
	return serve[*patientv1.PatientMerge](ctx, s.merge, r)
}

// UnmergePatient implements patientv1.PatientServiceServer.
func (s *patientServer) UnmergePatient(ctx context.Context, r *patientv1.UnmergePatientRequest) (*patientv1.PatientMerge, error) {
	return serve[*patientv1.PatientMerge](ctx, s.unmerge, r)
}

// The conversions of merge and unmerge, shared by the server binding and the client.

func mergeToPB(r patient.MergeRequest) *patientv1.MergePatientsRequest {
	return &patientv1.MergePatientsRequest{SurvivorId: r.SurvivorID, DuplicateId: r.DuplicateID, Reason: r.Reason}
}

func mergeFromPB(r *patientv1.MergePatientsRequest) patient.MergeRequest {
	return patient.MergeRequest{SurvivorID: r.GetSurvivorId(), DuplicateID: r.GetDuplicateId(), Reason: r.GetReason()}
}

func unmergeToPB(r patient.UnmergeRequest) *patientv1.UnmergePatientRequest {
	return &patientv1.UnmergePatientRequest{Id: r.ID, Reason: r.Reason}
}

func unmergeFromPB(r *patientv1.UnmergePatientRequest) patient.UnmergeRequest {
	return patient.UnmergeRequest{ID: r.GetId(), Reason: r.GetReason()}
}

func mergeRecordToPB(m patient.MergeRecord) *patientv1.PatientMerge {
	pb := &patientv1.PatientMerge{Id: m.ID, SurvivorId: m.SurvivorID, DuplicateId: m.DuplicateID, Reason: m.Reason,
		MergedAt: toTimestamp(m.MergedAt), MergedBy: m.MergedBy, Role: m.Role, RequestId: m.RequestID,
		UnmergedBy: m.UnmergedBy, UnmergeReason: m.UnmergeReason}
	if m.UnmergedAt != nil {
		pb.UnmergedAt = toTimestamp(*m.UnmergedAt)
	}
	return pb
}

func mergeRecordFromPB(pb *patientv1.PatientMerge) patient.MergeRecord {
	m := patient.MergeRecord{ID: pb.GetId(), SurvivorID: pb.GetSurvivorId(), DuplicateID: pb.GetDuplicateId(), Reason: pb.GetReason(),
		MergedAt: fromTimestamp(pb.GetMergedAt()), MergedBy: pb.GetMergedBy(), Role: pb.GetRole(), RequestID: pb.GetRequestId(),
		UnmergedBy: pb.GetUnmergedBy(), UnmergeReason: pb.GetUnmergeReason()}
	if pb.GetUnmergedAt() != nil {
		t := fromTimestamp(pb.GetUnmergedAt())
		m.UnmergedAt = &t
	}
	return m
}
