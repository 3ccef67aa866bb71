package grpctransport

import (
	"context"

	kitjwt "github.com/go-kit/kit/auth/jwt"
	"github.com/go-kit/kit/endpoint"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/observe"
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

// clientFactory builds the client endpoints of one gRPC service over one connection.
type clientFactory struct {
	conn    *grpc.ClientConn
	service string
}

// endpoint returns the client endpoint of one method: the go-kit client with the metadata
// every call carries, its errors converted back to the server's with FromStatus.
func (c clientFactory) endpoint(method string, enc kitgrpc.EncodeRequestFunc, dec kitgrpc.DecodeResponseFunc, reply any) endpoint.Endpoint {
	e := kitgrpc.NewClient(c.conn, c.service, method, enc, dec, reply,
		kitgrpc.ClientBefore(forwardRequestID, forwardClientAddr, kitjwt.ContextToGRPC()),
	).Endpoint()
	return func(ctx context.Context, req any) (any, error) {
		resp, err := e(ctx, req)
		if err != nil {
			return nil, FromStatus(err)
		}
		return resp, nil
	}
}

// forwardRequestID sends the context's request id, so the callee logs under the same id.
func forwardRequestID(ctx context.Context, md *metadata.MD) context.Context {
	if id := observe.RequestID(ctx); id != "" {
		md.Set(RequestIDKey, id)
	}
	return ctx
}

// forwardClientAddr sends the original caller's address, so that throttling and audit rows
// of the callee see the real client rather than this process (the callee believes it only
// from a trusted proxy).
func forwardClientAddr(ctx context.Context, md *metadata.MD) context.Context {
	if addr := observe.ClientAddr(ctx); addr != "" {
		md.Set(ForwardedForKey, addr)
	}
	return ctx
}
