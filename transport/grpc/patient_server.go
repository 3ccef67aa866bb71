package grpctransport

import (
	"context"

	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"google.golang.org/grpc"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/typed"
	billingv1 "github.com/pms/pms/proto/pms/billing/v1"
	patientv1 "github.com/pms/pms/proto/pms/patient/v1"
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
		billingAccount: kitgrpc.NewServer(set.BillingAccountEndpoint, total(billingAccountRequestFromPB),
			total(patientBillingAccountToPB)),
		invoices: kitgrpc.NewServer(set.InvoicesEndpoint, total(invoicesRequestFromPB), total(patientInvoicesToPB)),
	}
}

// patientServer binds one go-kit handler to each method of PatientService.
type patientServer struct {
	patientv1.UnimplementedPatientServiceServer
	create, get, list, update, del, history, audit kitgrpc.Handler
	billingAccount, invoices                       kitgrpc.Handler
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
