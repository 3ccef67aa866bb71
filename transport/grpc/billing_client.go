package grpctransport

import (
	"google.golang.org/grpc"

	"github.com/pms/pms/pkg/billing"
	billingv1 "github.com/pms/pms/proto/pms/billing/v1"
)

// NewBillingClient returns the billing endpoint set over conn, so a caller (the patient
// service, the gateway, a test) holds a billing.Service without knowing gRPC is under it.
// It forwards the request id, client address and bearer token as NewPatientClient does, and
// errors come back as the *errs.Error the server raised. Deadlines, retries and circuit
// breaking are the caller's policy: put them around the whole set with Set.Wrap.
func NewBillingClient(conn *grpc.ClientConn) billing.Set {
	c := clientFactory{conn: conn, service: billingv1.BillingService_ServiceDesc.ServiceName}
	return billing.Set{
		CreateAccountEndpoint: c.endpoint(billing.MethodCreateAccount, total(createAccountToPB), total(accountFromPB), &billingv1.Account{}),
		GetAccountEndpoint:    c.endpoint(billing.MethodGetAccount, total(getAccountToPB), total(accountFromPB), &billingv1.Account{}),
		ListAccountsEndpoint:  c.endpoint(billing.MethodListAccounts, total(listAccountsToPB), total(accountsFromPB), &billingv1.ListAccountsResponse{}),
		CreateInvoiceEndpoint: c.endpoint(billing.MethodCreateInvoice, total(createInvoiceToPB), total(invoiceFromPB), &billingv1.Invoice{}),
		GetInvoiceEndpoint:    c.endpoint(billing.MethodGetInvoice, total(getInvoiceToPB), total(invoiceFromPB), &billingv1.Invoice{}),
		ListInvoicesEndpoint:  c.endpoint(billing.MethodListInvoices, total(listInvoicesToPB), total(invoicePageFromPB), &billingv1.ListInvoicesResponse{}),
		IssueInvoiceEndpoint:  c.endpoint(billing.MethodIssueInvoice, total(issueToPB), total(invoiceFromPB), &billingv1.Invoice{}),
		RecordPaymentEndpoint: c.endpoint(billing.MethodRecordPayment, total(paymentRequestToPB), total(invoiceFromPB), &billingv1.Invoice{}),
		VoidInvoiceEndpoint:   c.endpoint(billing.MethodVoidInvoice, total(voidToPB), total(invoiceFromPB), &billingv1.Invoice{}),
	}
}
