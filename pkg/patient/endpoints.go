package patient

import (
	"context"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/op"
	"github.com/pms/pms/pkg/platform/stack"
	"github.com/pms/pms/pkg/platform/typed"
)

// Endpoint method names: the keys of metrics, logs, rate limits and the operation table.
const (
	MethodCreate  = "CreatePatient"
	MethodGet     = "GetPatient"
	MethodList    = "ListPatients"
	MethodUpdate  = "UpdatePatient"
	MethodDelete  = "DeletePatient"
	MethodHistory = "GetPatientHistory"
	MethodAudit   = "ListAudit"
	// MethodVerifyAudit walks the audit chain (GET /audit/verify), admin only.
	MethodVerifyAudit = "VerifyAudit"
	// MethodBillingAccount and MethodInvoices read the patient's billing data.
	MethodBillingAccount = "GetPatientBillingAccount"
	MethodInvoices       = "ListPatientInvoices"
	// MethodAccessLog reads one patient's access log (admin, privacy).
	MethodAccessLog = "GetPatientAccessLog"
	// MethodConfidentiality, MethodBreakGlass and MethodBreakGlassGrants are break-glass.
	MethodConfidentiality  = "SetPatientConfidentiality"
	MethodBreakGlass       = "BreakGlass"
	MethodBreakGlassGrants = "ListBreakGlassGrants"
	// MethodErase erases a deleted patient's PHI (admin only).
	MethodErase = "ErasePatient"
	// MethodDuplicates scores a record's possible duplicates, or demographics' (FHIR $match).
	MethodDuplicates = "FindDuplicates"
	// MethodMerge and MethodUnmerge merge a duplicate into a survivor and reverse it (merge.go).
	MethodMerge   = "MergePatients"
	MethodUnmerge = "UnmergePatient"
)

// Ops is the patient service's operation table (API.md, "Authentication and roles"):
// clinicians read and write patients, billing staff read them, analysts do not see them; the
// audit log is admin only (admin may call everything and is implied). The patient's billing
// data has the readers of invoices (billing staff, clinicians).
var Ops = op.Table{
	{Name: MethodCreate, Roles: []string{authz.RoleClinician}, Write: true, Action: ActionCreate},
	{Name: MethodGet, Roles: []string{authz.RoleClinician, authz.RoleBilling}, Action: ActionRead},
	{Name: MethodList, Roles: []string{authz.RoleClinician, authz.RoleBilling}, Action: ActionSearch},
	{Name: MethodUpdate, Roles: []string{authz.RoleClinician}, Write: true, Action: ActionUpdate},
	{Name: MethodDelete, Roles: []string{authz.RoleClinician}, Write: true, Action: ActionDelete},
	{Name: MethodHistory, Roles: []string{authz.RoleClinician, authz.RoleBilling}, Action: ActionHistory},
	{Name: MethodAudit, Roles: []string{authz.RoleAdmin, authz.RolePrivacy}, Action: ActionAuditRead},
	{Name: MethodBillingAccount, Roles: []string{authz.RoleClinician, authz.RoleBilling}, Action: ActionRead},
	{Name: MethodInvoices, Roles: []string{authz.RoleClinician, authz.RoleBilling}, Action: ActionRead},
	{Name: MethodAccessLog, Roles: []string{authz.RoleAdmin, authz.RolePrivacy}, Action: ActionAccessLogRead},
	{Name: MethodVerifyAudit, Roles: []string{authz.RoleAdmin}, Action: ActionVerifyAudit},
	// Break-glass (issue 17): admin and privacy restrict records and review the grants.
	{Name: MethodConfidentiality, Roles: []string{authz.RolePrivacy}, Write: true, Action: ActionConfidentiality},
	{Name: MethodBreakGlass, Roles: []string{authz.RoleClinician}, Write: true, Action: ActionBreakGlass},
	{Name: MethodBreakGlassGrants, Roles: []string{authz.RolePrivacy}, Action: ActionBreakGlassReview},
	// Erasure (issue 17): admin only, after a soft delete.
	{Name: MethodErase, Roles: []string{authz.RoleAdmin}, Write: true, Action: ActionErase},
	// Duplicates (issue 19): clinicians (admin implied), who register and merge records.
	{Name: MethodDuplicates, Roles: []string{authz.RoleClinician}, Action: ActionDuplicates},
	// Merge and unmerge (issue 19): clinicians (and admin), with a reason.
	{Name: MethodMerge, Roles: []string{authz.RoleClinician}, Write: true, Action: ActionMerge},
	{Name: MethodUnmerge, Roles: []string{authz.RoleClinician}, Write: true, Action: ActionUnmerge},
}

// Methods and Roles are derived from Ops.
var (
	Methods = Ops.Names()
	Roles   = Ops.Roles()
)

// GetRequest, HistoryRequest, BillingAccountRequest, InvoicesRequest: the endpoint requests
// that are just an id.
type (
	GetRequest            struct{ ID string }
	HistoryRequest        struct{ ID string }
	BillingAccountRequest struct{ ID string }
	InvoicesRequest       struct{ ID string }
	// VerifyAuditRequest asks for the audit chain's verdict, against the audit topic too
	// with AgainstTopic.
	VerifyAuditRequest struct{ AgainstTopic bool }
)

// HistoryResponse and AuditResponse wrap slices so every endpoint response is a struct.
type (
	HistoryResponse struct{ Versions []Version }
	AuditResponse   struct{ Entries []AuditEntry }
	DeleteResponse  struct{}
	// InvoicesResponse wraps the patient's invoices.
	InvoicesResponse struct{ Invoices []Invoice }
)

// Set is the patient endpoint set: one go-kit endpoint per operation. Servers build it from
// a Service with NewEndpoints; clients build it from transport client endpoints, and Set
// itself implements Service, so a caller never knows which wire is under it.
type Set struct {
	CreateEndpoint  endpoint.Endpoint `op:"CreatePatient"`
	GetEndpoint     endpoint.Endpoint `op:"GetPatient"`
	ListEndpoint    endpoint.Endpoint `op:"ListPatients"`
	UpdateEndpoint  endpoint.Endpoint `op:"UpdatePatient"`
	DeleteEndpoint  endpoint.Endpoint `op:"DeletePatient"`
	HistoryEndpoint endpoint.Endpoint `op:"GetPatientHistory"`
	AuditEndpoint   endpoint.Endpoint `op:"ListAudit"`
	// VerifyAuditEndpoint walks the audit chain.
	VerifyAuditEndpoint endpoint.Endpoint `op:"VerifyAudit"`
	// BillingAccountEndpoint and InvoicesEndpoint read the patient's billing data.
	BillingAccountEndpoint endpoint.Endpoint `op:"GetPatientBillingAccount"`
	InvoicesEndpoint       endpoint.Endpoint `op:"ListPatientInvoices"`
	// AccessLogEndpoint reads one patient's access log.
	AccessLogEndpoint endpoint.Endpoint `op:"GetPatientAccessLog"`
	// ConfidentialityEndpoint, BreakGlassEndpoint and BreakGlassGrantsEndpoint are break-glass.
	ConfidentialityEndpoint  endpoint.Endpoint `op:"SetPatientConfidentiality"`
	BreakGlassEndpoint       endpoint.Endpoint `op:"BreakGlass"`
	BreakGlassGrantsEndpoint endpoint.Endpoint `op:"ListBreakGlassGrants"`
	// EraseEndpoint erases a deleted patient's PHI.
	EraseEndpoint endpoint.Endpoint `op:"ErasePatient"`
	// DuplicatesEndpoint scores possible duplicates.
	DuplicatesEndpoint endpoint.Endpoint `op:"FindDuplicates"`
	// MergeEndpoint and UnmergeEndpoint merge a duplicate into a survivor and reverse it.
	MergeEndpoint   endpoint.Endpoint `op:"MergePatients"`
	UnmergeEndpoint endpoint.Endpoint `op:"UnmergePatient"`
}

// EndpointOptions configure the server-side endpoint middleware (pkg/platform/stack).
type EndpointOptions = stack.Options

// NewEndpoints wraps s in the endpoint set with, outermost first: metrics, logging,
// authentication and roles (o.Guard), and the rate limit (stack.Bind over Ops).
func NewEndpoints(s Service, o EndpointOptions) Set {
	return stack.Bind(o, Ops, Set{
		CreateEndpoint: typed.Endpoint(s.Create),
		GetEndpoint: typed.Endpoint(func(ctx context.Context, r GetRequest) (Patient, error) {
			return s.Get(ctx, r.ID)
		}),
		ListEndpoint:   typed.Endpoint(s.List),
		UpdateEndpoint: typed.Endpoint(s.Update),
		DeleteEndpoint: typed.Endpoint(func(ctx context.Context, r DeleteRequest) (DeleteResponse, error) {
			return DeleteResponse{}, s.Delete(ctx, r)
		}),
		HistoryEndpoint: typed.Endpoint(func(ctx context.Context, r HistoryRequest) (HistoryResponse, error) {
			v, err := s.History(ctx, r.ID)
			return HistoryResponse{Versions: v}, err
		}),
		AuditEndpoint: typed.Endpoint(func(ctx context.Context, q AuditQuery) (AuditResponse, error) {
			e, err := s.Audit(ctx, q)
			return AuditResponse{Entries: e}, err
		}),
		VerifyAuditEndpoint: typed.Endpoint(func(ctx context.Context, r VerifyAuditRequest) (audit.Report, error) {
			return s.VerifyAudit(audit.WithAgainstTopic(ctx, r.AgainstTopic))
		}),
		BillingAccountEndpoint: typed.Endpoint(func(ctx context.Context, r BillingAccountRequest) (BillingAccount, error) {
			return s.BillingAccount(ctx, r.ID)
		}),
		InvoicesEndpoint: typed.Endpoint(func(ctx context.Context, r InvoicesRequest) (InvoicesResponse, error) {
			inv, err := s.Invoices(ctx, r.ID)
			return InvoicesResponse{Invoices: inv}, err
		}),
		AccessLogEndpoint:        typed.Endpoint(s.AccessLog),
		ConfidentialityEndpoint:  typed.Endpoint(s.SetConfidentiality),
		BreakGlassEndpoint:       typed.Endpoint(s.BreakGlass),
		BreakGlassGrantsEndpoint: typed.Endpoint(breakGlassGrants(s)),
		EraseEndpoint:            typed.Endpoint(s.Erase),
		DuplicatesEndpoint:       typed.Endpoint(s.Duplicates),
		MergeEndpoint:            typed.Endpoint(s.Merge),
		UnmergeEndpoint:          typed.Endpoint(s.Unmerge),
	})
}

// DeniedAuditor returns the guard's hook that writes a refused call to the audit log with
// outcome "denied", naming the patient when the request did.
func DeniedAuditor(log AuditLog) authz.DeniedFunc {
	return audit.Denied(log, Ops.Actions(), func(req any) string {
		var id string
		switch r := req.(type) {
		case GetRequest:
			id = r.ID
		case HistoryRequest:
			id = r.ID
		case UpdateRequest:
			id = r.ID
		case DeleteRequest:
			id = r.ID
		case BillingAccountRequest:
			id = r.ID
		case InvoicesRequest:
			id = r.ID
		case AccessLogQuery:
			id = r.PatientID
		case ConfidentialityRequest:
			id = r.ID
		case BreakGlassRequest:
			id = r.ID
		case EraseRequest:
			id = r.ID
		case DuplicatesRequest:
		case MergeRequest:
			id = r.DuplicateID
		case UnmergeRequest:
			id = r.ID
		}
		if canonical, err := ParseID(id); err == nil {
			return canonical
		}
		return ""
	})
}

// Create implements Service over the endpoint set.
func (s Set) Create(ctx context.Context, req CreateRequest) (Patient, error) {
	return typed.Call[Patient](ctx, s.CreateEndpoint, req)
}

// Get implements Service over the endpoint set.
func (s Set) Get(ctx context.Context, id string) (Patient, error) {
	return typed.Call[Patient](ctx, s.GetEndpoint, GetRequest{ID: id})
}

// List implements Service over the endpoint set.
func (s Set) List(ctx context.Context, q ListQuery) (Page, error) {
	return typed.Call[Page](ctx, s.ListEndpoint, q)
}

// Update implements Service over the endpoint set.
func (s Set) Update(ctx context.Context, req UpdateRequest) (Patient, error) {
	return typed.Call[Patient](ctx, s.UpdateEndpoint, req)
}

// Delete implements Service over the endpoint set.
func (s Set) Delete(ctx context.Context, req DeleteRequest) error {
	_, err := typed.Call[DeleteResponse](ctx, s.DeleteEndpoint, req)
	return err
}

// History implements Service over the endpoint set.
func (s Set) History(ctx context.Context, id string) ([]Version, error) {
	r, err := typed.Call[HistoryResponse](ctx, s.HistoryEndpoint, HistoryRequest{ID: id})
	return r.Versions, err
}

// Audit implements Service over the endpoint set.
func (s Set) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	r, err := typed.Call[AuditResponse](ctx, s.AuditEndpoint, q)
	return r.Entries, err
}

// VerifyAudit implements Service over the endpoint set.
func (s Set) VerifyAudit(ctx context.Context) (audit.Report, error) {
	return typed.Call[audit.Report](ctx, s.VerifyAuditEndpoint, VerifyAuditRequest{AgainstTopic: audit.AgainstTopic(ctx)})
}

// BillingAccount implements Service over the endpoint set.
func (s Set) BillingAccount(ctx context.Context, id string) (BillingAccount, error) {
	return typed.Call[BillingAccount](ctx, s.BillingAccountEndpoint, BillingAccountRequest{ID: id})
}

// Invoices implements Service over the endpoint set.
func (s Set) Invoices(ctx context.Context, id string) ([]Invoice, error) {
	r, err := typed.Call[InvoicesResponse](ctx, s.InvoicesEndpoint, InvoicesRequest{ID: id})
	return r.Invoices, err
}

// AccessLog implements Service over the endpoint set.
func (s Set) AccessLog(ctx context.Context, q AccessLogQuery) (AccessLogPage, error) {
	return typed.Call[AccessLogPage](ctx, s.AccessLogEndpoint, q)
}

// Duplicates implements Service over the endpoint set.
func (s Set) Duplicates(ctx context.Context, req DuplicatesRequest) (DuplicatesResponse, error) {
	return typed.Call[DuplicatesResponse](ctx, s.DuplicatesEndpoint, req)
}

// Map returns the set with f around every endpoint it has (op.Map): clients put one policy
// (deadline, retry, circuit breaker) in front of a whole upstream with it.
func (s Set) Map(f op.Func) Set { return op.Map(s, f) }
