package grpctransport

import (
	"context"
	"strings"

	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/typed"
	billingv0 "github.com/pms/pms/proto/legacy/billingv0"
	billingv1 "github.com/pms/pms/proto/pms/billing/v1"
	"google.golang.org/grpc"
)

// RegisterBillingServer serves the billing endpoint set on s (a server from NewServer) as
// pms.billing.v1.BillingService and, for the earlier implementation's clients, as the
// package-less BillingService/CreateBillingAccount, both backed by the same account logic.
func RegisterBillingServer(s *grpc.Server, set billing.Set) {
	billingv1.RegisterBillingServiceServer(s, newBillingServer(set))
	billingv0.RegisterBillingServiceServer(s, newLegacyBillingServer(set))
}

// newBillingServer builds the binding of set; RegisterBillingServer registers it.
func newBillingServer(set billing.Set) *billingServer {
	return &billingServer{
		createAccount: kitgrpc.NewServer(set.CreateAccountEndpoint, total(createAccountFromPB), total(accountToPB)),
		getAccount:    kitgrpc.NewServer(set.GetAccountEndpoint, total(getAccountFromPB), total(accountToPB)),
		listAccounts:  kitgrpc.NewServer(set.ListAccountsEndpoint, total(listAccountsFromPB), total(accountsToPB)),
		createInvoice: kitgrpc.NewServer(set.CreateInvoiceEndpoint, total(createInvoiceFromPB), total(invoiceToPB)),
		getInvoice:    kitgrpc.NewServer(set.GetInvoiceEndpoint, total(getInvoiceFromPB), total(invoiceToPB)),
		listInvoices:  kitgrpc.NewServer(set.ListInvoicesEndpoint, total(listInvoicesFromPB), total(invoicePageToPB)),
		issue:         kitgrpc.NewServer(set.IssueInvoiceEndpoint, total(issueFromPB), total(invoiceToPB)),
		pay:           kitgrpc.NewServer(set.RecordPaymentEndpoint, total(paymentRequestFromPB), total(invoiceToPB)),
		void:          kitgrpc.NewServer(set.VoidInvoiceEndpoint, total(voidFromPB), total(invoiceToPB)),
		audit:         kitgrpc.NewServer(set.AuditEndpoint, typed.Reject(convert(billingAuditQueryFromPB)), total(billingAuditToPB)),
		verify: kitgrpc.NewServer(set.VerifyAuditEndpoint, total(func(r *billingv1.VerifyAuditRequest) billing.VerifyAuditRequest {
			return billing.VerifyAuditRequest{AgainstTopic: r.GetAgainstTopic()}
		}), total(auditVerdictToPB)),
	}
}

// billingServer binds one go-kit handler to each method of BillingService.
type billingServer struct {
	billingv1.UnimplementedBillingServiceServer
	createAccount, getAccount, listAccounts, createInvoice, getInvoice, listInvoices, issue, pay, void, audit kitgrpc.Handler
	verify                                                                                                    kitgrpc.Handler
}

// VerifyAudit implements billingv1.BillingServiceServer.
func (s *billingServer) VerifyAudit(ctx context.Context, r *billingv1.VerifyAuditRequest) (*billingv1.AuditVerdict, error) {
	return serve[*billingv1.AuditVerdict](ctx, s.verify, r)
}

// CreateBillingAccount implements billingv1.BillingServiceServer.
func (s *billingServer) CreateBillingAccount(ctx context.Context, r *billingv1.CreateBillingAccountRequest) (*billingv1.Account, error) {
	return serve[*billingv1.Account](ctx, s.createAccount, r)
}

// GetAccount implements billingv1.BillingServiceServer.
func (s *billingServer) GetAccount(ctx context.Context, r *billingv1.GetAccountRequest) (*billingv1.Account, error) {
	return serve[*billingv1.Account](ctx, s.getAccount, r)
}

// ListAccounts implements billingv1.BillingServiceServer.
func (s *billingServer) ListAccounts(ctx context.Context, r *billingv1.ListAccountsRequest) (*billingv1.ListAccountsResponse, error) {
	return serve[*billingv1.ListAccountsResponse](ctx, s.listAccounts, r)
}

// CreateInvoice implements billingv1.BillingServiceServer.
func (s *billingServer) CreateInvoice(ctx context.Context, r *billingv1.CreateInvoiceRequest) (*billingv1.Invoice, error) {
	return serve[*billingv1.Invoice](ctx, s.createInvoice, r)
}

// GetInvoice implements billingv1.BillingServiceServer.
func (s *billingServer) GetInvoice(ctx context.Context, r *billingv1.GetInvoiceRequest) (*billingv1.Invoice, error) {
	return serve[*billingv1.Invoice](ctx, s.getInvoice, r)
}

// ListInvoices implements billingv1.BillingServiceServer.
func (s *billingServer) ListInvoices(ctx context.Context, r *billingv1.ListInvoicesRequest) (*billingv1.ListInvoicesResponse, error) {
	return serve[*billingv1.ListInvoicesResponse](ctx, s.listInvoices, r)
}

// IssueInvoice implements billingv1.BillingServiceServer.
func (s *billingServer) IssueInvoice(ctx context.Context, r *billingv1.IssueInvoiceRequest) (*billingv1.Invoice, error) {
	return serve[*billingv1.Invoice](ctx, s.issue, r)
}

// RecordPayment implements billingv1.BillingServiceServer.
func (s *billingServer) RecordPayment(ctx context.Context, r *billingv1.RecordPaymentRequest) (*billingv1.Invoice, error) {
	return serve[*billingv1.Invoice](ctx, s.pay, r)
}

// VoidInvoice implements billingv1.BillingServiceServer.
func (s *billingServer) VoidInvoice(ctx context.Context, r *billingv1.VoidInvoiceRequest) (*billingv1.Invoice, error) {
	return serve[*billingv1.Invoice](ctx, s.void, r)
}

// ListAudit implements billingv1.BillingServiceServer.
func (s *billingServer) ListAudit(ctx context.Context, r *billingv1.ListAuditRequest) (*billingv1.ListAuditResponse, error) {
	return serve[*billingv1.ListAuditResponse](ctx, s.audit, r)
}

// newLegacyBillingServer binds the earlier implementation's one RPC to the account endpoint.
func newLegacyBillingServer(set billing.Set) *legacyBillingServer {
	return &legacyBillingServer{create: kitgrpc.NewServer(set.CreateAccountEndpoint, total(legacyFromPB), total(legacyToPB))}
}

// legacyBillingServer is the package-less BillingService.
type legacyBillingServer struct {
	billingv0.UnimplementedBillingServiceServer
	create kitgrpc.Handler
}

// CreateBillingAccount implements billingv0.BillingServiceServer.
func (s *legacyBillingServer) CreateBillingAccount(ctx context.Context, r *billingv0.BillingRequest) (*billingv0.BillingResponse, error) {
	return serve[*billingv0.BillingResponse](ctx, s.create, r)
}

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
		AuditEndpoint:         c.endpoint(billing.MethodAudit, total(billingAuditQueryToPB), total(billingAuditFromPB), &billingv1.ListAuditResponse{}),
		VerifyAuditEndpoint: c.endpoint(billing.MethodVerifyAudit, total(func(r billing.VerifyAuditRequest) *billingv1.VerifyAuditRequest {
			return &billingv1.VerifyAuditRequest{AgainstTopic: r.AgainstTopic}
		}), total(auditVerdictFromPB), &billingv1.AuditVerdict{}),
	}
}

// The conversions between the billing domain and its messages, one pair per type, shared by
// the server binding and the client. Messages are read through their getters, so an absent
// (nil) message or Timestamp reads as the zero value and never panics.

func accountToPB(a billing.Account) *billingv1.Account {
	return &billingv1.Account{Id: a.ID, PatientId: a.PatientID, Status: a.Status, CreatedAt: toTimestamp(a.CreatedAt)}
}

func accountFromPB(a *billingv1.Account) billing.Account {
	return billing.Account{ID: a.GetId(), PatientID: a.GetPatientId(), Status: a.GetStatus(), CreatedAt: fromTimestamp(a.GetCreatedAt())}
}

func createAccountToPB(r billing.CreateAccountRequest) *billingv1.CreateBillingAccountRequest {
	return &billingv1.CreateBillingAccountRequest{PatientId: r.PatientID, Name: r.Name, Email: r.Email}
}

func createAccountFromPB(r *billingv1.CreateBillingAccountRequest) billing.CreateAccountRequest {
	return billing.CreateAccountRequest{PatientID: r.GetPatientId(), Name: r.GetName(), Email: r.GetEmail()}
}

// legacyFromPB reads the earlier implementation's BillingRequest.
func legacyFromPB(r *billingv0.BillingRequest) billing.CreateAccountRequest {
	return billing.CreateAccountRequest{PatientID: r.GetPatientId(), Name: r.GetName(), Email: r.GetEmail()}
}

// legacyToPB answers as the earlier implementation did: the account id and an upper-case
// status ("ACTIVE").
func legacyToPB(a billing.Account) *billingv0.BillingResponse {
	return &billingv0.BillingResponse{AccountId: a.ID, Status: strings.ToUpper(a.Status)}
}

func getAccountToPB(r billing.GetAccountRequest) *billingv1.GetAccountRequest {
	return &billingv1.GetAccountRequest{Id: r.ID}
}

func getAccountFromPB(r *billingv1.GetAccountRequest) billing.GetAccountRequest {
	return billing.GetAccountRequest{ID: r.GetId()}
}

func listAccountsToPB(q billing.AccountQuery) *billingv1.ListAccountsRequest {
	return &billingv1.ListAccountsRequest{PatientId: q.PatientID}
}

func listAccountsFromPB(r *billingv1.ListAccountsRequest) billing.AccountQuery {
	return billing.AccountQuery{PatientID: r.GetPatientId()}
}

func accountsToPB(r billing.AccountsResponse) *billingv1.ListAccountsResponse {
	return &billingv1.ListAccountsResponse{Accounts: mapSlice(r.Accounts, accountToPB)}
}

func accountsFromPB(r *billingv1.ListAccountsResponse) billing.AccountsResponse {
	return billing.AccountsResponse{Accounts: mapSlice(r.GetAccounts(), accountFromPB)}
}

func invoiceToPB(inv billing.Invoice) *billingv1.Invoice {
	return &billingv1.Invoice{
		Id:         inv.ID,
		PatientId:  inv.PatientID,
		AccountId:  inv.AccountID,
		Currency:   inv.Currency,
		Status:     string(inv.Status),
		DueDate:    inv.DueDate,
		Lines:      mapSlice(inv.Lines, lineToPB),
		Subtotal:   inv.Subtotal,
		AmountPaid: inv.AmountPaid,
		AmountDue:  inv.AmountDue,
		Payments:   mapSlice(inv.Payments, paymentToPB),
		Version:    inv.Version,
		CreatedAt:  toTimestamp(inv.CreatedAt),
		UpdatedAt:  toTimestamp(inv.UpdatedAt),
	}
}

func invoiceFromPB(inv *billingv1.Invoice) billing.Invoice {
	return billing.Invoice{
		ID:         inv.GetId(),
		PatientID:  inv.GetPatientId(),
		AccountID:  inv.GetAccountId(),
		Currency:   inv.GetCurrency(),
		Status:     billing.Status(inv.GetStatus()),
		DueDate:    inv.GetDueDate(),
		Lines:      mapSlice(inv.GetLines(), lineFromPB),
		Subtotal:   inv.GetSubtotal(),
		AmountPaid: inv.GetAmountPaid(),
		AmountDue:  inv.GetAmountDue(),
		Payments:   mapSlice(inv.GetPayments(), paymentFromPB),
		Version:    inv.GetVersion(),
		CreatedAt:  fromTimestamp(inv.GetCreatedAt()),
		UpdatedAt:  fromTimestamp(inv.GetUpdatedAt()),
	}
}

func lineToPB(l billing.Line) *billingv1.InvoiceLine {
	return &billingv1.InvoiceLine{Description: l.Description, Quantity: l.Quantity, UnitAmount: l.UnitAmount, Amount: l.Amount}
}

func lineFromPB(l *billingv1.InvoiceLine) billing.Line {
	return billing.Line{Description: l.GetDescription(), Quantity: l.GetQuantity(), UnitAmount: l.GetUnitAmount(), Amount: l.GetAmount()}
}

func paymentToPB(p billing.Payment) *billingv1.Payment {
	return &billingv1.Payment{Id: p.ID, Amount: p.Amount, Method: p.Method, At: toTimestamp(p.At)}
}

func paymentFromPB(p *billingv1.Payment) billing.Payment {
	return billing.Payment{ID: p.GetId(), Amount: p.GetAmount(), Method: p.GetMethod(), At: fromTimestamp(p.GetAt())}
}

func lineInputToPB(l billing.LineInput) *billingv1.InvoiceLineInput {
	return &billingv1.InvoiceLineInput{Description: l.Description, Quantity: l.Quantity, UnitAmount: l.UnitAmount, Currency: l.Currency}
}

func lineInputFromPB(l *billingv1.InvoiceLineInput) billing.LineInput {
	return billing.LineInput{Description: l.GetDescription(), Quantity: l.GetQuantity(), UnitAmount: l.GetUnitAmount(), Currency: l.GetCurrency()}
}

func createInvoiceToPB(r billing.CreateInvoiceRequest) *billingv1.CreateInvoiceRequest {
	return &billingv1.CreateInvoiceRequest{
		PatientId: r.PatientID, Currency: r.Currency, DueDate: r.DueDate,
		Lines: mapSlice(r.Lines, lineInputToPB), IdempotencyKey: r.IdempotencyKey,
	}
}

// createInvoiceFromPB keeps "no lines" as nil, as the HTTP decoder does for a missing field.
func createInvoiceFromPB(r *billingv1.CreateInvoiceRequest) billing.CreateInvoiceRequest {
	req := billing.CreateInvoiceRequest{
		PatientID: r.GetPatientId(), Currency: r.GetCurrency(), DueDate: r.GetDueDate(),
		IdempotencyKey: r.GetIdempotencyKey(),
	}
	if len(r.GetLines()) > 0 {
		req.Lines = mapSlice(r.GetLines(), lineInputFromPB)
	}
	return req
}

func getInvoiceToPB(r billing.GetInvoiceRequest) *billingv1.GetInvoiceRequest {
	return &billingv1.GetInvoiceRequest{Id: r.ID}
}

func getInvoiceFromPB(r *billingv1.GetInvoiceRequest) billing.GetInvoiceRequest {
	return billing.GetInvoiceRequest{ID: r.GetId()}
}

func listInvoicesToPB(q billing.InvoiceQuery) *billingv1.ListInvoicesRequest {
	return &billingv1.ListInvoicesRequest{PatientId: q.PatientID, Status: q.Status, Limit: int32Of(q.Limit), PageToken: q.PageToken}
}

func listInvoicesFromPB(r *billingv1.ListInvoicesRequest) billing.InvoiceQuery {
	return billing.InvoiceQuery{PatientID: r.GetPatientId(), Status: r.GetStatus(), Limit: int(r.GetLimit()), PageToken: r.GetPageToken()}
}

func invoicePageToPB(p billing.InvoicePage) *billingv1.ListInvoicesResponse {
	return &billingv1.ListInvoicesResponse{Invoices: mapSlice(p.Invoices, invoiceToPB), NextPageToken: p.NextPageToken}
}

func invoicePageFromPB(r *billingv1.ListInvoicesResponse) billing.InvoicePage {
	return billing.InvoicePage{Invoices: mapSlice(r.GetInvoices(), invoiceFromPB), NextPageToken: r.GetNextPageToken()}
}

func issueToPB(r billing.IssueInvoiceRequest) *billingv1.IssueInvoiceRequest {
	return &billingv1.IssueInvoiceRequest{Id: r.ID}
}

func issueFromPB(r *billingv1.IssueInvoiceRequest) billing.IssueInvoiceRequest {
	return billing.IssueInvoiceRequest{ID: r.GetId()}
}

func voidToPB(r billing.VoidInvoiceRequest) *billingv1.VoidInvoiceRequest {
	return &billingv1.VoidInvoiceRequest{Id: r.ID}
}

func voidFromPB(r *billingv1.VoidInvoiceRequest) billing.VoidInvoiceRequest {
	return billing.VoidInvoiceRequest{ID: r.GetId()}
}

func paymentRequestToPB(r billing.PaymentRequest) *billingv1.RecordPaymentRequest {
	return &billingv1.RecordPaymentRequest{InvoiceId: r.InvoiceID, Amount: r.Amount, Method: r.Method, Currency: r.Currency, IdempotencyKey: r.IdempotencyKey}
}

func paymentRequestFromPB(r *billingv1.RecordPaymentRequest) billing.PaymentRequest {
	return billing.PaymentRequest{InvoiceID: r.GetInvoiceId(), Amount: r.GetAmount(), Method: r.GetMethod(), Currency: r.GetCurrency(), IdempotencyKey: r.GetIdempotencyKey()}
}

func billingAuditQueryToPB(q audit.Query) *billingv1.ListAuditRequest {
	return &billingv1.ListAuditRequest{SubjectId: q.SubjectID, Actor: q.Actor, From: toTimestamp(q.From), To: toTimestamp(q.To), Limit: int32Of(q.Limit)}
}

// billingAuditQueryFromPB refuses an out-of-range Timestamp with the contract's field names.
func billingAuditQueryFromPB(r *billingv1.ListAuditRequest) (audit.Query, error) {
	var f errs.Fields
	q := audit.Query{SubjectID: r.GetSubjectId(), Actor: r.GetActor(), From: timestampField(&f, "from", r.GetFrom()),
		To: timestampField(&f, "to", r.GetTo()), Limit: int(r.GetLimit())}
	return q, f.Err()
}

func billingAuditToPB(r billing.AuditResponse) *billingv1.ListAuditResponse {
	return &billingv1.ListAuditResponse{Entries: mapSlice(r.Entries, func(e audit.Record) *billingv1.AuditEntry {
		return &billingv1.AuditEntry{Id: e.ID, At: toTimestamp(e.At), Actor: e.Actor, Role: e.Role, Action: e.Action,
			SubjectId: e.SubjectID, Outcome: e.Outcome, RequestId: e.RequestID, ClientAddress: e.ClientAddress}
	})}
}

func billingAuditFromPB(r *billingv1.ListAuditResponse) billing.AuditResponse {
	return billing.AuditResponse{Entries: mapSlice(r.GetEntries(), func(e *billingv1.AuditEntry) audit.Record {
		return audit.Record{ID: e.GetId(), At: fromTimestamp(e.GetAt()), Actor: e.GetActor(), Role: e.GetRole(), Action: e.GetAction(),
			SubjectID: e.GetSubjectId(), Outcome: e.GetOutcome(), RequestID: e.GetRequestId(), ClientAddress: e.GetClientAddress()}
	})}
}
