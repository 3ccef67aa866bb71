package billing

import (
	"context"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/op"
	"github.com/pms/pms/pkg/platform/stack"
	"github.com/pms/pms/pkg/platform/typed"
)

// Endpoint method names: the keys of metrics, logs, rate limits and the operation table,
// the names of the gRPC methods, and the `endpoint` header of Kafka commands.
const (
	MethodCreateAccount = "CreateBillingAccount"
	MethodGetAccount    = "GetAccount"
	MethodListAccounts  = "ListAccounts"
	MethodCreateInvoice = "CreateInvoice"
	MethodGetInvoice    = "GetInvoice"
	MethodListInvoices  = "ListInvoices"
	MethodIssueInvoice  = "IssueInvoice"
	MethodRecordPayment = "RecordPayment"
	MethodVoidInvoice   = "VoidInvoice"
	MethodAudit         = "ListAudit"
	// MethodVerifyAudit walks the audit chain (GET /audit/verify), admin only.
	MethodVerifyAudit = "VerifyAudit"
)

// Ops is billing's operation table (API.md): billing staff read and write billing; clinicians
// read invoices and accounts and open an account as a side effect of registering a patient
// (the patient service forwards their token); analysts see nothing; admin is implied.
var Ops = op.Table{
	{Name: MethodCreateAccount, Roles: []string{authz.RoleBilling, authz.RoleClinician}, Write: true, Action: ActionCreateAccount},
	{Name: MethodGetAccount, Roles: []string{authz.RoleBilling, authz.RoleClinician}, Action: ActionReadAccount},
	{Name: MethodListAccounts, Roles: []string{authz.RoleBilling, authz.RoleClinician}, Action: ActionSearchAccounts},
	{Name: MethodCreateInvoice, Roles: []string{authz.RoleBilling}, Write: true, Action: ActionCreateInvoice},
	{Name: MethodGetInvoice, Roles: []string{authz.RoleBilling, authz.RoleClinician}, Action: ActionReadInvoice},
	{Name: MethodListInvoices, Roles: []string{authz.RoleBilling, authz.RoleClinician}, Action: ActionSearchInvoices},
	{Name: MethodIssueInvoice, Roles: []string{authz.RoleBilling}, Write: true, Action: ActionIssueInvoice},
	{Name: MethodRecordPayment, Roles: []string{authz.RoleBilling}, Write: true, Action: ActionRecordPayment},
	{Name: MethodVoidInvoice, Roles: []string{authz.RoleBilling}, Write: true, Action: ActionVoidInvoice},
	{Name: MethodAudit, Roles: []string{authz.RoleAdmin, authz.RolePrivacy}, Action: ActionAuditRead},
	{Name: MethodVerifyAudit, Roles: []string{authz.RoleAdmin}, Action: ActionVerifyAudit},
}

// Methods and Roles are derived from Ops.
var (
	Methods = Ops.Names()
	Roles   = Ops.Roles()
)

// The endpoint requests that are just an id, each its own type so a request cannot reach
// the wrong endpoint unnoticed.
type (
	GetAccountRequest   struct{ ID string }
	GetInvoiceRequest   struct{ ID string }
	IssueInvoiceRequest struct{ ID string }
	VoidInvoiceRequest  struct{ ID string }
	// VerifyAuditRequest asks for the audit chain's verdict, against the audit topic too
	// with AgainstTopic.
	VerifyAuditRequest struct{ AgainstTopic bool }
)

// AccountsResponse and AuditResponse wrap slices so every endpoint response is a struct.
type (
	AccountsResponse struct{ Accounts []Account }
	AuditResponse    struct{ Entries []audit.Record }
)

// Set is the billing endpoint set: one go-kit endpoint per operation. Servers build it from
// a Service with NewEndpoints; clients build it from transport client endpoints, and Set
// itself implements Service, so a caller never knows which wire is under it.
type Set struct {
	CreateAccountEndpoint endpoint.Endpoint `op:"CreateBillingAccount"`
	GetAccountEndpoint    endpoint.Endpoint `op:"GetAccount"`
	ListAccountsEndpoint  endpoint.Endpoint `op:"ListAccounts"`
	CreateInvoiceEndpoint endpoint.Endpoint `op:"CreateInvoice"`
	GetInvoiceEndpoint    endpoint.Endpoint `op:"GetInvoice"`
	ListInvoicesEndpoint  endpoint.Endpoint `op:"ListInvoices"`
	IssueInvoiceEndpoint  endpoint.Endpoint `op:"IssueInvoice"`
	RecordPaymentEndpoint endpoint.Endpoint `op:"RecordPayment"`
	VoidInvoiceEndpoint   endpoint.Endpoint `op:"VoidInvoice"`
	AuditEndpoint         endpoint.Endpoint `op:"ListAudit"`
	VerifyAuditEndpoint   endpoint.Endpoint `op:"VerifyAudit"`
}

// DeniedAuditor returns the guard's hook that audits refused calls as "denied", naming what
// the request named: the account or invoice it was about, else the patient (a search by
// patient, a new invoice or account for one). A malformed id is left out.
func DeniedAuditor(log AuditLog) authz.DeniedFunc {
	return audit.Denied(log, Ops.Actions(), func(req any) string {
		var id string
		switch r := req.(type) {
		case GetAccountRequest:
			id = r.ID
		case GetInvoiceRequest:
			id = r.ID
		case IssueInvoiceRequest:
			id = r.ID
		case VoidInvoiceRequest:
			id = r.ID
		case PaymentRequest:
			id = r.InvoiceID
		case CreateAccountRequest:
			id = r.PatientID
		case AccountQuery:
			id = r.PatientID
		case InvoiceQuery:
			id = r.PatientID
		case CreateInvoiceRequest:
			id = r.PatientID
		}
		if canonical, err := ParseID(id); err == nil {
			return canonical
		}
		return ""
	})
}

// EndpointOptions configure the server-side endpoint middleware (pkg/platform/stack).
type EndpointOptions = stack.Options

// NewEndpoints wraps s in the endpoint set with, outermost first: metrics, logging,
// authentication, and the per-endpoint rate limit.
func NewEndpoints(s Service, o EndpointOptions) Set {
	return stack.Bind(o, Ops, Set{
		CreateAccountEndpoint: typed.Endpoint(s.CreateAccount),
		GetAccountEndpoint: typed.Endpoint(func(ctx context.Context, r GetAccountRequest) (Account, error) {
			return s.GetAccount(ctx, r.ID)
		}),
		ListAccountsEndpoint: typed.Endpoint(func(ctx context.Context, q AccountQuery) (AccountsResponse, error) {
			a, err := s.ListAccounts(ctx, q)
			return AccountsResponse{Accounts: a}, err
		}),
		CreateInvoiceEndpoint: typed.Endpoint(s.CreateInvoice),
		GetInvoiceEndpoint: typed.Endpoint(func(ctx context.Context, r GetInvoiceRequest) (Invoice, error) {
			return s.GetInvoice(ctx, r.ID)
		}),
		ListInvoicesEndpoint: typed.Endpoint(s.ListInvoices),
		IssueInvoiceEndpoint: typed.Endpoint(func(ctx context.Context, r IssueInvoiceRequest) (Invoice, error) {
			return s.IssueInvoice(ctx, r.ID)
		}),
		RecordPaymentEndpoint: typed.Endpoint(s.RecordPayment),
		VoidInvoiceEndpoint: typed.Endpoint(func(ctx context.Context, r VoidInvoiceRequest) (Invoice, error) {
			return s.VoidInvoice(ctx, r.ID)
		}),
		AuditEndpoint: typed.Endpoint(func(ctx context.Context, q audit.Query) (AuditResponse, error) {
			e, err := s.Audit(ctx, q)
			return AuditResponse{Entries: e}, err
		}),
		VerifyAuditEndpoint: typed.Endpoint(func(ctx context.Context, r VerifyAuditRequest) (audit.Report, error) {
			return s.VerifyAudit(audit.WithAgainstTopic(ctx, r.AgainstTopic))
		}),
	})
}

// Map returns the set with f around every endpoint it has (op.Map): clients put one policy
// (deadline, retry, circuit breaker) in front of a whole upstream with it.
func (s Set) Map(f op.Func) Set { return op.Map(s, f) }

// Wrap returns the set with mws around every endpoint (the first listed outermost).
func (s Set) Wrap(mws ...endpoint.Middleware) Set { return s.Map(op.Chain(mws...)) }

// CreateAccount implements Service over the endpoint set.
func (s Set) CreateAccount(ctx context.Context, req CreateAccountRequest) (Account, error) {
	return typed.Call[Account](ctx, s.CreateAccountEndpoint, req)
}

// GetAccount implements Service over the endpoint set.
func (s Set) GetAccount(ctx context.Context, id string) (Account, error) {
	return typed.Call[Account](ctx, s.GetAccountEndpoint, GetAccountRequest{ID: id})
}

// ListAccounts implements Service over the endpoint set.
func (s Set) ListAccounts(ctx context.Context, q AccountQuery) ([]Account, error) {
	r, err := typed.Call[AccountsResponse](ctx, s.ListAccountsEndpoint, q)
	return r.Accounts, err
}

// CreateInvoice implements Service over the endpoint set.
func (s Set) CreateInvoice(ctx context.Context, req CreateInvoiceRequest) (Invoice, error) {
	return typed.Call[Invoice](ctx, s.CreateInvoiceEndpoint, req)
}

// GetInvoice implements Service over the endpoint set.
func (s Set) GetInvoice(ctx context.Context, id string) (Invoice, error) {
	return typed.Call[Invoice](ctx, s.GetInvoiceEndpoint, GetInvoiceRequest{ID: id})
}

// ListInvoices implements Service over the endpoint set.
func (s Set) ListInvoices(ctx context.Context, q InvoiceQuery) (InvoicePage, error) {
	return typed.Call[InvoicePage](ctx, s.ListInvoicesEndpoint, q)
}

// IssueInvoice implements Service over the endpoint set.
func (s Set) IssueInvoice(ctx context.Context, id string) (Invoice, error) {
	return typed.Call[Invoice](ctx, s.IssueInvoiceEndpoint, IssueInvoiceRequest{ID: id})
}

// RecordPayment implements Service over the endpoint set.
func (s Set) RecordPayment(ctx context.Context, req PaymentRequest) (Invoice, error) {
	return typed.Call[Invoice](ctx, s.RecordPaymentEndpoint, req)
}

// VoidInvoice implements Service over the endpoint set.
func (s Set) VoidInvoice(ctx context.Context, id string) (Invoice, error) {
	return typed.Call[Invoice](ctx, s.VoidInvoiceEndpoint, VoidInvoiceRequest{ID: id})
}

// VerifyAudit implements Service over the endpoint set.
func (s Set) VerifyAudit(ctx context.Context) (audit.Report, error) {
	return typed.Call[audit.Report](ctx, s.VerifyAuditEndpoint, VerifyAuditRequest{AgainstTopic: audit.AgainstTopic(ctx)})
}

// Audit implements Service over the endpoint set.
func (s Set) Audit(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	r, err := typed.Call[AuditResponse](ctx, s.AuditEndpoint, q)
	return r.Entries, err
}
