package httptransport

import (
	"context"
	"net/http"

	"github.com/go-kit/kit/endpoint"
	"github.com/gorilla/mux"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/typed"
)

// FHIR Account (docs/fhir.md, "Account and Invoice"): a patient's billing account, read and
// searched by patient over billing's endpoints, so billing's roles and audit apply (GetAccount
// and ListAccounts: billing, clinician, admin).

// fhirAccount is the FHIR R4 Account resource as the facade writes it.
type fhirAccount struct {
	ResourceType  string          `json:"resourceType"`
	ID            string          `json:"id"`
	Status        string          `json:"status"`
	Subject       []fhirReference `json:"subject"`
	ServicePeriod *fhirPeriod     `json:"servicePeriod,omitempty"`
}

type fhirPeriod struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// fhirBillingRoutes registers Account and Invoice read and search.
func fhirBillingRoutes(r *mux.Router, o Options, set billing.Set) {
	handleFHIR(r, o, http.MethodGet, "/Account", fhirAccountSearch(set.ListAccountsEndpoint), decodeFHIRAccountSearch, encodeFHIRAccounts)
	handleFHIR(r, o, http.MethodGet, "/Account/{id}", set.GetAccountEndpoint, decodeFHIRAccountRead, encodeFHIRAccount)
	handleFHIR(r, o, http.MethodGet, "/Invoice", fhirInvoiceSearch(set.ListInvoicesEndpoint), decodeFHIRInvoiceSearch, encodeFHIRInvoices)
	handleFHIR(r, o, http.MethodGet, "/Invoice/{id}", set.GetInvoiceEndpoint, decodeFHIRInvoiceRead, encodeFHIRInvoice)
}

// accountToFHIR maps a billing account: status active (billing has no other yet), the
// patient as subject, the opening as the start of the service period.
func accountToFHIR(a billing.Account) fhirAccount {
	status := "active"
	if a.Status != billing.AccountActive {
		status = "unknown"
	}
	res := fhirAccount{ResourceType: "Account", ID: a.ID, Status: status,
		Subject: []fhirReference{{Reference: "Patient/" + a.PatientID}}}
	if !a.CreatedAt.IsZero() {
		res.ServicePeriod = &fhirPeriod{Start: fhirInstant(a.CreatedAt)}
	}
	return res
}

func decodeFHIRAccountRead(_ context.Context, r *http.Request) (billing.GetAccountRequest, error) {
	id, err := fhirPathID(r)
	return billing.GetAccountRequest{ID: id}, err
}

func encodeFHIRAccount(_ context.Context, _ http.Header, a billing.Account) (int, any, error) {
	return http.StatusOK, accountToFHIR(a), nil
}

func decodeFHIRAccountSearch(_ context.Context, r *http.Request) (resourceSearch, error) {
	return parseResourceSearch(r, "Account", nil)
}

// accountSearchResponse is the accounts found with the search that found them.
type accountSearchResponse struct {
	Accounts []billing.Account
	Req      resourceSearch
}

// fhirAccountSearch serves an Account search over ListAccounts (one account per patient, so
// a single page whatever _count says).
func fhirAccountSearch(list endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, req any) (any, error) {
		rs, ok := req.(resourceSearch)
		if !ok {
			return list(ctx, req) // a rejected request: the guard answers first
		}
		resp, err := typed.Call[billing.AccountsResponse](ctx, list, billing.AccountQuery{PatientID: rs.PatientID})
		if err != nil {
			return nil, err
		}
		return accountSearchResponse{Accounts: resp.Accounts, Req: rs}, nil
	}
}

func encodeFHIRAccounts(ctx context.Context, _ http.Header, r accountSearchResponse) (int, any, error) {
	ids := make([]string, len(r.Accounts))
	res := make([]any, len(r.Accounts))
	for i, a := range r.Accounts {
		ids[i], res[i] = a.ID, accountToFHIR(a)
	}
	return http.StatusOK, resourceBundle(ctx, r.Req, "", ids, res, true), nil
}
