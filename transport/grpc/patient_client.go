package grpctransport

import (
	"google.golang.org/grpc"

	"github.com/pms/pms/pkg/patient"
	billingv1 "github.com/pms/pms/proto/pms/billing/v1"
	patientv1 "github.com/pms/pms/proto/pms/patient/v1"
)

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
		BillingAccountEndpoint: c.endpoint(patient.MethodBillingAccount, total(billingAccountRequestToPB),
			total(patientBillingAccountFromPB), &billingv1.Account{}),
		InvoicesEndpoint: c.endpoint(patient.MethodInvoices, total(invoicesRequestToPB), total(patientInvoicesFromPB),
			&patientv1.ListPatientInvoicesResponse{}),
	}
}
