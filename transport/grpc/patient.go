package grpctransport

import (
	"context"

	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/typed"
	billingv1 "github.com/pms/pms/proto/pms/billing/v1"
	patientv1 "github.com/pms/pms/proto/pms/patient/v1"
	"google.golang.org/grpc"
)

// RegisterPatientServer serves the patient endpoint set as pms.patient.v1.PatientService on
// s (a server from NewServer, which supplies request ids, client addresses, tokens and panic
// recovery). Errors of the set become statuses with ToStatus, because go-kit's gRPC server
// returns an endpoint's error as it is, which grpc-go would send as codes.Unknown.
func RegisterPatientServer(s *grpc.Server, set patient.Set) {
	patientv1.RegisterPatientServiceServer(s, newPatientServer(set))
}

// newPatientServer builds the binding of set; RegisterPatientServer registers it.
func newPatientServer(set patient.Set) *patientServer {
	return &patientServer{
		create:  kitgrpc.NewServer(set.CreateEndpoint, total(createFromPB), total(patientToPB)),
		get:     kitgrpc.NewServer(set.GetEndpoint, total(getFromPB), total(patientToPB)),
		list:    kitgrpc.NewServer(set.ListEndpoint, total(listFromPB), total(pageToPB)),
		update:  kitgrpc.NewServer(set.UpdateEndpoint, total(updateFromPB), total(patientToPB)),
		del:     kitgrpc.NewServer(set.DeleteEndpoint, total(deleteFromPB), total(deletedToPB)),
		history: kitgrpc.NewServer(set.HistoryEndpoint, total(historyFromPB), total(versionsToPB)),
		audit:   kitgrpc.NewServer(set.AuditEndpoint, typed.Reject(convert(auditQueryFromPB)), total(auditEntriesToPB)),
		verify: kitgrpc.NewServer(set.VerifyAuditEndpoint, total(func(r *billingv1.VerifyAuditRequest) patient.VerifyAuditRequest {
			return patient.VerifyAuditRequest{AgainstTopic: r.GetAgainstTopic()}
		}), total(auditVerdictToPB)),
		billingAccount: kitgrpc.NewServer(set.BillingAccountEndpoint, total(billingAccountRequestFromPB),
			total(patientBillingAccountToPB)),
		invoices:  kitgrpc.NewServer(set.InvoicesEndpoint, total(invoicesRequestFromPB), total(patientInvoicesToPB)),
		accessLog: kitgrpc.NewServer(set.AccessLogEndpoint, total(accessLogQueryFromPB), total(accessLogToPB)),
		// break-glass (patient_breakglass.go)
		confidentiality:  kitgrpc.NewServer(set.ConfidentialityEndpoint, total(confidentialityFromPB), total(patientToPB)),
		breakGlass:       kitgrpc.NewServer(set.BreakGlassEndpoint, total(breakGlassFromPB), total(grantToPB)),
		breakGlassGrants: kitgrpc.NewServer(set.BreakGlassGrantsEndpoint, typed.Reject(convert(grantQueryFromPB)), total(grantsToPB)),
		erase:            kitgrpc.NewServer(set.EraseEndpoint, total(eraseFromPB), total(erasureToPB)),
		duplicates:       kitgrpc.NewServer(set.DuplicatesEndpoint, total(duplicatesFromPB), total(candidatesToPB)),
		// merge and unmerge (patient_merge.go)
		merge:   kitgrpc.NewServer(set.MergeEndpoint, total(mergeFromPB), total(mergeRecordToPB)),
		unmerge: kitgrpc.NewServer(set.UnmergeEndpoint, total(unmergeFromPB), total(mergeRecordToPB)),
	}
}

// patientServer binds one go-kit handler to each method of PatientService.
type patientServer struct {
	patientv1.UnimplementedPatientServiceServer
	create, get, list, update, del, history, audit kitgrpc.Handler
	billingAccount, invoices, accessLog, verify    kitgrpc.Handler
	confidentiality, breakGlass, breakGlassGrants  kitgrpc.Handler
	erase, duplicates, merge, unmerge              kitgrpc.Handler
}

// GetPatientAccessLog implements patientv1.PatientServiceServer.
func (s *patientServer) GetPatientAccessLog(ctx context.Context, r *patientv1.GetPatientAccessLogRequest) (*patientv1.GetPatientAccessLogResponse, error) {
	return serve[*patientv1.GetPatientAccessLogResponse](ctx, s.accessLog, r)
}

// VerifyAudit implements patientv1.PatientServiceServer.
func (s *patientServer) VerifyAudit(ctx context.Context, r *billingv1.VerifyAuditRequest) (*billingv1.AuditVerdict, error) {
	return serve[*billingv1.AuditVerdict](ctx, s.verify, r)
}

// auditVerdictToPB and auditVerdictFromPB carry an audit.Report over gRPC.
func auditVerdictToPB(r audit.Report) *billingv1.AuditVerdict {
	return &billingv1.AuditVerdict{Service: r.Service, Rows: r.Rows, Ok: r.OK, FirstBadSeq: r.FirstBadSeq, Problem: r.Problem,
		LastSeq: r.LastSeq, LastHash: r.LastHash, AgainstTopic: r.AgainstTopic, TopicEntries: r.TopicEntries, Checkpoints: r.Checkpoints}
}

func auditVerdictFromPB(v *billingv1.AuditVerdict) audit.Report {
	return audit.Report{Service: v.GetService(), Rows: v.GetRows(), OK: v.GetOk(), FirstBadSeq: v.GetFirstBadSeq(), Problem: v.GetProblem(),
		LastSeq: v.GetLastSeq(), LastHash: v.GetLastHash(), AgainstTopic: v.GetAgainstTopic(), TopicEntries: v.GetTopicEntries(),
		Checkpoints: v.GetCheckpoints()}
}

// CreatePatient implements patientv1.PatientServiceServer.
func (s *patientServer) CreatePatient(ctx context.Context, r *patientv1.CreatePatientRequest) (*patientv1.Patient, error) {
	return serve[*patientv1.Patient](ctx, s.create, r)
}

// GetPatient implements patientv1.PatientServiceServer.
func (s *patientServer) GetPatient(ctx context.Context, r *patientv1.GetPatientRequest) (*patientv1.Patient, error) {
	return serve[*patientv1.Patient](ctx, s.get, r)
}

// ListPatients implements patientv1.PatientServiceServer.
func (s *patientServer) ListPatients(ctx context.Context, r *patientv1.ListPatientsRequest) (*patientv1.ListPatientsResponse, error) {
	return serve[*patientv1.ListPatientsResponse](ctx, s.list, r)
}

// UpdatePatient implements patientv1.PatientServiceServer.
func (s *patientServer) UpdatePatient(ctx context.Context, r *patientv1.UpdatePatientRequest) (*patientv1.Patient, error) {
	return serve[*patientv1.Patient](ctx, s.update, r)
}

// DeletePatient implements patientv1.PatientServiceServer.
func (s *patientServer) DeletePatient(ctx context.Context, r *patientv1.DeletePatientRequest) (*patientv1.DeletePatientResponse, error) {
	return serve[*patientv1.DeletePatientResponse](ctx, s.del, r)
}

// GetPatientHistory implements patientv1.PatientServiceServer.
func (s *patientServer) GetPatientHistory(ctx context.Context, r *patientv1.GetPatientHistoryRequest) (*patientv1.GetPatientHistoryResponse, error) {
	return serve[*patientv1.GetPatientHistoryResponse](ctx, s.history, r)
}

// ListAudit implements patientv1.PatientServiceServer.
func (s *patientServer) ListAudit(ctx context.Context, r *patientv1.ListAuditRequest) (*patientv1.ListAuditResponse, error) {
	return serve[*patientv1.ListAuditResponse](ctx, s.audit, r)
}

// GetPatientBillingAccount implements patientv1.PatientServiceServer.
func (s *patientServer) GetPatientBillingAccount(ctx context.Context, r *patientv1.GetPatientBillingAccountRequest) (*billingv1.Account, error) {
	return serve[*billingv1.Account](ctx, s.billingAccount, r)
}

// ListPatientInvoices implements patientv1.PatientServiceServer.
func (s *patientServer) ListPatientInvoices(ctx context.Context, r *patientv1.ListPatientInvoicesRequest) (*patientv1.ListPatientInvoicesResponse, error) {
	return serve[*patientv1.ListPatientInvoicesResponse](ctx, s.invoices, r)
}

// NewPatientClient returns the patient endpoint set over conn, so a caller (the gateway, a
// test, another service) holds a patient.Service without knowing gRPC is under it. Every
// method shares conn; make it once per upstream (with ClientDialOptions) and close it on
// shutdown. Each call forwards the context's request id, client address and bearer token
// (go-kit auth/jwt's context key) as metadata, and its error comes back as the *errs.Error
// the server raised (FromStatus), so errors.Is(err, patient.ErrGone) holds here too.
// Deadlines are the caller's: give ctx one.
func NewPatientClient(conn *grpc.ClientConn) patient.Set {
	c := clientFactory{conn: conn, service: patientv1.PatientService_ServiceDesc.ServiceName}
	return patient.Set{
		CreateEndpoint:  c.endpoint(patient.MethodCreate, total(createToPB), total(patientFromPB), &patientv1.Patient{}),
		GetEndpoint:     c.endpoint(patient.MethodGet, total(getToPB), total(patientFromPB), &patientv1.Patient{}),
		ListEndpoint:    c.endpoint(patient.MethodList, total(listToPB), total(pageFromPB), &patientv1.ListPatientsResponse{}),
		UpdateEndpoint:  c.endpoint(patient.MethodUpdate, total(updateToPB), total(patientFromPB), &patientv1.Patient{}),
		DeleteEndpoint:  c.endpoint(patient.MethodDelete, total(deleteToPB), total(deletedFromPB), &patientv1.DeletePatientResponse{}),
		HistoryEndpoint: c.endpoint(patient.MethodHistory, total(historyToPB), total(versionsFromPB), &patientv1.GetPatientHistoryResponse{}),
		AuditEndpoint:   c.endpoint(patient.MethodAudit, total(auditQueryToPB), total(auditEntriesFromPB), &patientv1.ListAuditResponse{}),
		VerifyAuditEndpoint: c.endpoint(patient.MethodVerifyAudit, total(func(r patient.VerifyAuditRequest) *billingv1.VerifyAuditRequest {
			return &billingv1.VerifyAuditRequest{AgainstTopic: r.AgainstTopic}
		}), total(auditVerdictFromPB), &billingv1.AuditVerdict{}),
		BillingAccountEndpoint: c.endpoint(patient.MethodBillingAccount, total(billingAccountRequestToPB),
			total(patientBillingAccountFromPB), &billingv1.Account{}),
		InvoicesEndpoint: c.endpoint(patient.MethodInvoices, total(invoicesRequestToPB), total(patientInvoicesFromPB),
			&patientv1.ListPatientInvoicesResponse{}),
		AccessLogEndpoint: c.endpoint(patient.MethodAccessLog, total(accessLogQueryToPB), total(accessLogFromPB),
			&patientv1.GetPatientAccessLogResponse{}),
		ConfidentialityEndpoint: c.endpoint(patient.MethodConfidentiality, total(confidentialityToPB), total(patientFromPB), &patientv1.Patient{}),
		BreakGlassEndpoint:      c.endpoint(patient.MethodBreakGlass, total(breakGlassToPB), total(grantFromPB), &patientv1.BreakGlassGrant{}),
		BreakGlassGrantsEndpoint: c.endpoint(patient.MethodBreakGlassGrants, total(grantQueryToPB), total(grantsFromPB),
			&patientv1.ListBreakGlassGrantsResponse{}),
		EraseEndpoint:   c.endpoint(patient.MethodErase, total(eraseToPB), total(erasureFromPB), &patientv1.PatientErasure{}),
		MergeEndpoint:   c.endpoint(patient.MethodMerge, total(mergeToPB), total(mergeRecordFromPB), &patientv1.PatientMerge{}),
		UnmergeEndpoint: c.endpoint(patient.MethodUnmerge, total(unmergeToPB), total(mergeRecordFromPB), &patientv1.PatientMerge{}),
		DuplicatesEndpoint: c.endpoint(patient.MethodDuplicates, total(duplicatesToPB), total(candidatesFromPB),
			&patientv1.FindDuplicatesResponse{}),
	}
}

// The conversions between the patient domain and its messages, one pair per type, shared by
// the server binding and the client. Messages are read through their getters, so an absent
// (nil) message or Timestamp reads as the zero value and never panics.

func patientToPB(p patient.Patient) *patientv1.Patient {
	return &patientv1.Patient{
		Id:              p.ID,
		Mrn:             p.MRN,
		Name:            p.Name,
		Email:           p.Email,
		Address:         p.Address,
		DateOfBirth:     p.DateOfBirth,
		RegisteredDate:  p.RegisteredDate,
		Version:         p.Version,
		CreatedAt:       toTimestamp(p.CreatedAt),
		UpdatedAt:       toTimestamp(p.UpdatedAt),
		Confidentiality: p.Confidentiality,
		Family:          p.Family,
		Given:           p.Given,
		Gender:          p.Gender,
		Phone:           p.Phone,
		Identifiers:     mapSlice(p.Identifiers, identifierToPB),
		// #nosec G115 -- at most patient.DefaultDuplicateCount
		PossibleDuplicates: int32(p.PossibleDuplicates),
		MergedInto:         p.MergedInto,
	}
}

// nilIfEmpty makes an empty list nil: proto does not tell them apart, and the contract's JSON
// shows both as [] (patient.Patient.WithLists).
func nilIfEmpty[T any](v []T) []T {
	if len(v) == 0 {
		return nil
	}
	return v
}

func identifierToPB(i patient.Identifier) *patientv1.Identifier {
	return &patientv1.Identifier{System: i.System, Value: i.Value}
}

func identifierFromPB(i *patientv1.Identifier) patient.Identifier {
	return patient.Identifier{System: i.GetSystem(), Value: i.GetValue()}
}

func patientFromPB(p *patientv1.Patient) patient.Patient {
	return patient.Patient{
		ID:                 p.GetId(),
		MRN:                p.GetMrn(),
		Name:               p.GetName(),
		Email:              p.GetEmail(),
		Address:            p.GetAddress(),
		DateOfBirth:        p.GetDateOfBirth(),
		RegisteredDate:     p.GetRegisteredDate(),
		Version:            p.GetVersion(),
		CreatedAt:          fromTimestamp(p.GetCreatedAt()),
		UpdatedAt:          fromTimestamp(p.GetUpdatedAt()),
		Confidentiality:    p.GetConfidentiality(),
		Family:             p.GetFamily(),
		Given:              p.GetGiven(),
		Gender:             p.GetGender(),
		Phone:              p.GetPhone(),
		Identifiers:        mapSlice(p.GetIdentifiers(), identifierFromPB),
		MergedInto:         p.GetMergedInto(),
		PossibleDuplicates: max(int(p.GetPossibleDuplicates()), 0),
	}.WithLists()
}

func createToPB(r patient.CreateRequest) *patientv1.CreatePatientRequest {
	return &patientv1.CreatePatientRequest{
		Name:                r.Name,
		Email:               r.Email,
		Address:             r.Address,
		DateOfBirth:         r.DateOfBirth,
		RegisteredDate:      r.RegisteredDate,
		IdempotencyKey:      r.IdempotencyKey,
		Family:              r.Family,
		Given:               r.Given,
		Gender:              r.Gender,
		Phone:               r.Phone,
		Identifiers:         mapSlice(r.Identifiers, identifierToPB),
		ConfirmNotDuplicate: r.ConfirmNotDuplicate,
		DuplicateCheck:      r.DuplicateCheck,
	}
}

func createFromPB(r *patientv1.CreatePatientRequest) patient.CreateRequest {
	return patient.CreateRequest{
		Name:                r.GetName(),
		Email:               r.GetEmail(),
		Address:             r.GetAddress(),
		DateOfBirth:         r.GetDateOfBirth(),
		RegisteredDate:      r.GetRegisteredDate(),
		IdempotencyKey:      r.GetIdempotencyKey(),
		Family:              r.GetFamily(),
		Given:               r.GetGiven(),
		Gender:              r.GetGender(),
		Phone:               r.GetPhone(),
		Identifiers:         nilIfEmpty(mapSlice(r.GetIdentifiers(), identifierFromPB)),
		ConfirmNotDuplicate: r.GetConfirmNotDuplicate(),
		DuplicateCheck:      r.GetDuplicateCheck(),
	}
}

func getToPB(r patient.GetRequest) *patientv1.GetPatientRequest {
	return &patientv1.GetPatientRequest{Id: r.ID}
}

func getFromPB(r *patientv1.GetPatientRequest) patient.GetRequest {
	return patient.GetRequest{ID: r.GetId()}
}

func listToPB(q patient.ListQuery) *patientv1.ListPatientsRequest {
	return &patientv1.ListPatientsRequest{
		Q:               q.Q,
		Email:           q.Email,
		DateOfBirth:     q.DateOfBirth,
		Limit:           int32Of(q.Limit),
		PageToken:       q.PageToken,
		Identifier:      q.Identifier,
		Family:          q.Family,
		Given:           q.Given,
		Phone:           q.Phone,
		Gender:          q.Gender,
		DateOfBirthFrom: q.BornFrom,
		DateOfBirthTo:   q.BornTo,
	}
}

func listFromPB(r *patientv1.ListPatientsRequest) patient.ListQuery {
	return patient.ListQuery{
		Q:           r.GetQ(),
		Email:       r.GetEmail(),
		DateOfBirth: r.GetDateOfBirth(),
		Limit:       int(r.GetLimit()),
		PageToken:   r.GetPageToken(),
		Identifier:  r.GetIdentifier(),
		Family:      r.GetFamily(),
		Given:       r.GetGiven(),
		Phone:       r.GetPhone(),
		Gender:      r.GetGender(),
		BornFrom:    r.GetDateOfBirthFrom(),
		BornTo:      r.GetDateOfBirthTo(),
	}
}

func pageToPB(p patient.Page) *patientv1.ListPatientsResponse {
	return &patientv1.ListPatientsResponse{
		Patients:       mapSlice(p.Patients, patientToPB),
		NextPageToken:  p.NextPageToken,
		TotalCount:     p.Total,
		TotalEstimated: p.TotalEstimated,
	}
}

func pageFromPB(r *patientv1.ListPatientsResponse) patient.Page {
	return patient.Page{
		Patients:       mapSlice(r.GetPatients(), patientFromPB),
		NextPageToken:  r.GetNextPageToken(),
		Total:          r.GetTotalCount(),
		TotalEstimated: r.GetTotalEstimated(),
	}
}

func updateToPB(r patient.UpdateRequest) *patientv1.UpdatePatientRequest {
	pb := &patientv1.UpdatePatientRequest{
		Id:                  r.ID,
		Name:                r.Name,
		Email:               r.Email,
		Address:             r.Address,
		DateOfBirth:         r.DateOfBirth,
		IfMatch:             r.IfMatch,
		Unchanged:           readOnlyToPB(r.Unchanged),
		Family:              clone(r.Family),
		Gender:              clone(r.Gender),
		Phone:               clone(r.Phone),
		ConfirmNotDuplicate: r.ConfirmNotDuplicate,
	}
	if r.Given != nil {
		pb.Given = &patientv1.GivenNames{Values: *r.Given}
	}
	if r.Identifiers != nil {
		pb.Identifiers = &patientv1.Identifiers{Values: mapSlice(*r.Identifiers, identifierToPB)}
	}
	return pb
}

func updateFromPB(r *patientv1.UpdatePatientRequest) patient.UpdateRequest {
	u := patient.UpdateRequest{
		ID:                  r.GetId(),
		Name:                r.GetName(),
		Email:               r.GetEmail(),
		Address:             r.GetAddress(),
		DateOfBirth:         r.GetDateOfBirth(),
		IfMatch:             r.GetIfMatch(),
		Unchanged:           readOnlyFromPB(r.GetUnchanged()),
		ConfirmNotDuplicate: r.GetConfirmNotDuplicate(),
	}
	if r != nil { // optional fields have no nil-safe getter of their presence
		u.Family, u.Gender, u.Phone = clone(r.Family), clone(r.Gender), clone(r.Phone)
	}
	// A wrapper message present means the field was sent (its list may be empty: cleared).
	if g := r.GetGiven(); g != nil {
		given := append([]string{}, g.GetValues()...)
		u.Given = &given
	}
	if ids := r.GetIdentifiers(); ids != nil {
		v := mapSlice(ids.GetValues(), identifierFromPB)
		u.Identifiers = &v
	}
	return u
}

// readOnlyToPB leaves the message out when no field was echoed.
func readOnlyToPB(u patient.ReadOnlyFields) *patientv1.ReadOnlyFields {
	if u == (patient.ReadOnlyFields{}) {
		return nil
	}
	return &patientv1.ReadOnlyFields{
		Id:              clone(u.ID),
		Mrn:             clone(u.MRN),
		RegisteredDate:  clone(u.RegisteredDate),
		Version:         clone(u.Version),
		CreatedAt:       clone(u.CreatedAt),
		UpdatedAt:       clone(u.UpdatedAt),
		Confidentiality: clone(u.Confidentiality),
	}
}

func readOnlyFromPB(u *patientv1.ReadOnlyFields) patient.ReadOnlyFields {
	if u == nil {
		return patient.ReadOnlyFields{}
	}
	return patient.ReadOnlyFields{
		ID:              clone(u.Id),
		MRN:             clone(u.Mrn),
		RegisteredDate:  clone(u.RegisteredDate),
		Version:         clone(u.Version),
		CreatedAt:       clone(u.CreatedAt),
		UpdatedAt:       clone(u.UpdatedAt),
		Confidentiality: clone(u.Confidentiality),
	}
}

func deleteToPB(r patient.DeleteRequest) *patientv1.DeletePatientRequest {
	return &patientv1.DeletePatientRequest{Id: r.ID, IfMatch: r.IfMatch}
}

func deleteFromPB(r *patientv1.DeletePatientRequest) patient.DeleteRequest {
	return patient.DeleteRequest{ID: r.GetId(), IfMatch: r.GetIfMatch()}
}

func deletedToPB(patient.DeleteResponse) *patientv1.DeletePatientResponse {
	return &patientv1.DeletePatientResponse{}
}

func deletedFromPB(*patientv1.DeletePatientResponse) patient.DeleteResponse {
	return patient.DeleteResponse{}
}

func historyToPB(r patient.HistoryRequest) *patientv1.GetPatientHistoryRequest {
	return &patientv1.GetPatientHistoryRequest{Id: r.ID}
}

func historyFromPB(r *patientv1.GetPatientHistoryRequest) patient.HistoryRequest {
	return patient.HistoryRequest{ID: r.GetId()}
}

func versionsToPB(r patient.HistoryResponse) *patientv1.GetPatientHistoryResponse {
	return &patientv1.GetPatientHistoryResponse{Versions: mapSlice(r.Versions, versionToPB)}
}

func versionsFromPB(r *patientv1.GetPatientHistoryResponse) patient.HistoryResponse {
	return patient.HistoryResponse{Versions: mapSlice(r.GetVersions(), versionFromPB)}
}

func versionToPB(v patient.Version) *patientv1.PatientVersion {
	return &patientv1.PatientVersion{
		Version:   v.Version,
		Change:    v.Change,
		ChangedAt: toTimestamp(v.ChangedAt),
		ChangedBy: v.ChangedBy,
		Role:      v.Role,
		RequestId: v.RequestID,
		Patient:   patientToPB(v.Patient),
	}
}

func versionFromPB(v *patientv1.PatientVersion) patient.Version {
	return patient.Version{
		Version:   v.GetVersion(),
		Change:    v.GetChange(),
		ChangedAt: fromTimestamp(v.GetChangedAt()),
		ChangedBy: v.GetChangedBy(),
		Role:      v.GetRole(),
		RequestID: v.GetRequestId(),
		Patient:   patientFromPB(v.GetPatient()),
	}
}

func auditQueryToPB(q patient.AuditQuery) *patientv1.ListAuditRequest {
	return &patientv1.ListAuditRequest{
		PatientId: q.PatientID,
		Actor:     q.Actor,
		From:      toTimestamp(q.From),
		To:        toTimestamp(q.To),
		Limit:     int32Of(q.Limit),
	}
}

// auditQueryFromPB refuses an out-of-range Timestamp with the contract's field names.
func auditQueryFromPB(r *patientv1.ListAuditRequest) (patient.AuditQuery, error) {
	var f errs.Fields
	q := patient.AuditQuery{
		PatientID: r.GetPatientId(),
		Actor:     r.GetActor(),
		From:      timestampField(&f, "from", r.GetFrom()),
		To:        timestampField(&f, "to", r.GetTo()),
		Limit:     int(r.GetLimit()),
	}
	return q, f.Err()
}

func auditEntriesToPB(r patient.AuditResponse) *patientv1.ListAuditResponse {
	return &patientv1.ListAuditResponse{Entries: mapSlice(r.Entries, auditEntryToPB)}
}

func auditEntriesFromPB(r *patientv1.ListAuditResponse) patient.AuditResponse {
	return patient.AuditResponse{Entries: mapSlice(r.GetEntries(), auditEntryFromPB)}
}

func auditEntryToPB(e patient.AuditEntry) *patientv1.AuditEntry {
	return &patientv1.AuditEntry{
		Id:            e.ID,
		At:            toTimestamp(e.At),
		Actor:         e.Actor,
		Role:          e.Role,
		Action:        e.Action,
		PatientId:     e.PatientID,
		Outcome:       e.Outcome,
		RequestId:     e.RequestID,
		ClientAddress: e.ClientAddress,
	}
}

func auditEntryFromPB(e *patientv1.AuditEntry) patient.AuditEntry {
	return patient.AuditEntry{
		ID:            e.GetId(),
		At:            fromTimestamp(e.GetAt()),
		Actor:         e.GetActor(),
		Role:          e.GetRole(),
		Action:        e.GetAction(),
		PatientID:     e.GetPatientId(),
		Outcome:       e.GetOutcome(),
		RequestID:     e.GetRequestId(),
		ClientAddress: e.GetClientAddress(),
	}
}

// The patient service's billing reads travel as billing's own messages (pms.billing.v1), so
// an account or invoice has one wire shape whichever service serves it.

func billingAccountRequestToPB(r patient.BillingAccountRequest) *patientv1.GetPatientBillingAccountRequest {
	return &patientv1.GetPatientBillingAccountRequest{Id: r.ID}
}

func billingAccountRequestFromPB(r *patientv1.GetPatientBillingAccountRequest) patient.BillingAccountRequest {
	return patient.BillingAccountRequest{ID: r.GetId()}
}

func invoicesRequestToPB(r patient.InvoicesRequest) *patientv1.ListPatientInvoicesRequest {
	return &patientv1.ListPatientInvoicesRequest{Id: r.ID}
}

func invoicesRequestFromPB(r *patientv1.ListPatientInvoicesRequest) patient.InvoicesRequest {
	return patient.InvoicesRequest{ID: r.GetId()}
}

func patientBillingAccountToPB(a patient.BillingAccount) *billingv1.Account {
	return &billingv1.Account{Id: a.ID, PatientId: a.PatientID, Status: a.Status, CreatedAt: toTimestamp(a.CreatedAt)}
}

func patientBillingAccountFromPB(a *billingv1.Account) patient.BillingAccount {
	return patient.BillingAccount{ID: a.GetId(), PatientID: a.GetPatientId(), Status: a.GetStatus(), CreatedAt: fromTimestamp(a.GetCreatedAt())}
}

func patientInvoicesToPB(r patient.InvoicesResponse) *patientv1.ListPatientInvoicesResponse {
	return &patientv1.ListPatientInvoicesResponse{Invoices: mapSlice(r.Invoices, patientInvoiceToPB)}
}

func patientInvoicesFromPB(r *patientv1.ListPatientInvoicesResponse) patient.InvoicesResponse {
	return patient.InvoicesResponse{Invoices: mapSlice(r.GetInvoices(), patientInvoiceFromPB)}
}

func patientInvoiceToPB(inv patient.Invoice) *billingv1.Invoice {
	return &billingv1.Invoice{
		Id: inv.ID, PatientId: inv.PatientID, AccountId: inv.AccountID, Currency: inv.Currency, Status: inv.Status,
		DueDate: inv.DueDate, Subtotal: inv.Subtotal, AmountPaid: inv.AmountPaid, AmountDue: inv.AmountDue,
		Version: inv.Version, CreatedAt: toTimestamp(inv.CreatedAt), UpdatedAt: toTimestamp(inv.UpdatedAt),
		Lines: mapSlice(inv.Lines, func(l patient.InvoiceLine) *billingv1.InvoiceLine {
			return &billingv1.InvoiceLine{Description: l.Description, Quantity: l.Quantity, UnitAmount: l.UnitAmount, Amount: l.Amount}
		}),
		Payments: mapSlice(inv.Payments, func(p patient.InvoicePayment) *billingv1.Payment {
			return &billingv1.Payment{Id: p.ID, Amount: p.Amount, Method: p.Method, At: toTimestamp(p.At)}
		}),
	}
}

func patientInvoiceFromPB(inv *billingv1.Invoice) patient.Invoice {
	return patient.Invoice{
		ID: inv.GetId(), PatientID: inv.GetPatientId(), AccountID: inv.GetAccountId(), Currency: inv.GetCurrency(),
		Status: inv.GetStatus(), DueDate: inv.GetDueDate(), Subtotal: inv.GetSubtotal(), AmountPaid: inv.GetAmountPaid(),
		AmountDue: inv.GetAmountDue(), Version: inv.GetVersion(), CreatedAt: fromTimestamp(inv.GetCreatedAt()),
		UpdatedAt: fromTimestamp(inv.GetUpdatedAt()),
		Lines: mapSlice(inv.GetLines(), func(l *billingv1.InvoiceLine) patient.InvoiceLine {
			return patient.InvoiceLine{Description: l.GetDescription(), Quantity: l.GetQuantity(), UnitAmount: l.GetUnitAmount(), Amount: l.GetAmount()}
		}),
		Payments: mapSlice(inv.GetPayments(), func(p *billingv1.Payment) patient.InvoicePayment {
			return patient.InvoicePayment{ID: p.GetId(), Amount: p.GetAmount(), Method: p.GetMethod(), At: fromTimestamp(p.GetAt())}
		}),
	}
}

func accessLogQueryToPB(q patient.AccessLogQuery) *patientv1.GetPatientAccessLogRequest {
	return &patientv1.GetPatientAccessLogRequest{Id: q.PatientID, Limit: int32Of(q.Limit), PageToken: q.PageToken}
}

func accessLogQueryFromPB(r *patientv1.GetPatientAccessLogRequest) patient.AccessLogQuery {
	return patient.AccessLogQuery{PatientID: r.GetId(), Limit: int(r.GetLimit()), PageToken: r.GetPageToken()}
}

func accessLogToPB(p patient.AccessLogPage) *patientv1.GetPatientAccessLogResponse {
	return &patientv1.GetPatientAccessLogResponse{NextPageToken: p.NextPageToken, Records: mapSlice(p.Records, func(r patient.AccessRecord) *patientv1.AccessRecord {
		return &patientv1.AccessRecord{EntryId: r.EntryID, At: toTimestamp(r.At), Actor: r.Actor, Role: r.Role, Action: r.Action,
			Outcome: r.Outcome, Position: int32(r.Position), RequestId: r.RequestID, ClientAddress: r.ClientAddress,
			Transport: r.Transport, Emergency: r.Emergency}
	})}
}

func accessLogFromPB(r *patientv1.GetPatientAccessLogResponse) patient.AccessLogPage {
	return patient.AccessLogPage{NextPageToken: r.GetNextPageToken(), Records: mapSlice(r.GetRecords(), func(a *patientv1.AccessRecord) patient.AccessRecord {
		return patient.AccessRecord{EntryID: a.GetEntryId(), At: fromTimestamp(a.GetAt()), Actor: a.GetActor(), Role: a.GetRole(),
			Action: a.GetAction(), Outcome: a.GetOutcome(), Position: int(a.GetPosition()), RequestID: a.GetRequestId(),
			ClientAddress: a.GetClientAddress(), Transport: a.GetTransport(), Emergency: a.GetEmergency()}
	})}
}
