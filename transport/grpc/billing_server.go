package grpctransport

import (
	"context"

	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"google.golang.org/grpc"

	"github.com/pms/pms/pkg/billing"
	billingv0 "github.com/pms/pms/proto/legacy/billingv0"
	billingv1 "github.com/pms/pms/proto/pms/billing/v1"
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
	}
}

// billingServer binds one go-kit handler to each method of BillingService.
type billingServer struct {
	billingv1.UnimplementedBillingServiceServer
	createAccount, getAccount, listAccounts, createInvoice, getInvoice, listInvoices, issue, pay, void kitgrpc.Handler
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
