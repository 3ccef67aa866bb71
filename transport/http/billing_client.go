package httptransport

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/pms/pms/pkg/billing"
)

// NewBillingClient returns the billing endpoint set speaking HTTP to the billing API at
// baseURL (e.g. "http://127.0.0.1:4001", or "http://gateway:4004/api/billing"). The Set
// implements billing.Service; errors come back as the *errs.Error the server sent. The REST
// API opens no accounts, so CreateAccount fails with method_not_allowed without a request:
// use the gRPC client for it.
func NewBillingClient(baseURL string, o ClientOptions) (billing.Set, error) {
	c, err := newClient(baseURL, o)
	if err != nil {
		return billing.Set{}, err
	}
	invoice := decodeJSONResponse[billing.Invoice]
	return billing.Set{
		CreateAccountEndpoint: func(context.Context, any) (any, error) { return nil, errNoRoute },
		GetAccountEndpoint: clientEndpoint(c, func(r billing.GetAccountRequest) (call, error) {
			return resourceCall(http.MethodGet, "/accounts", r.ID, "")
		}, decodeJSONResponse[billing.Account]),
		ListAccountsEndpoint: clientEndpoint(c, func(q billing.AccountQuery) (call, error) {
			v := url.Values{}
			setParam(v, "patientId", q.PatientID)
			return call{method: http.MethodGet, path: "/accounts", query: v}, nil
		}, func(resp *http.Response) (billing.AccountsResponse, error) {
			a, err := decodeJSONResponse[[]billing.Account](resp)
			return billing.AccountsResponse{Accounts: a}, err
		}),
		CreateInvoiceEndpoint: clientEndpoint(c, func(r billing.CreateInvoiceRequest) (call, error) {
			cl := call{method: http.MethodPost, path: "/invoices", header: http.Header{}, body: r}
			if r.IdempotencyKey != "" {
				cl.header.Set("Idempotency-Key", r.IdempotencyKey)
			}
			return cl, nil
		}, invoice),
		GetInvoiceEndpoint: clientEndpoint(c, func(r billing.GetInvoiceRequest) (call, error) {
			return resourceCall(http.MethodGet, "/invoices", r.ID, "")
		}, invoice),
		ListInvoicesEndpoint: clientEndpoint(c, func(q billing.InvoiceQuery) (call, error) {
			v := url.Values{}
			setParam(v, "patientId", q.PatientID)
			setParam(v, "status", q.Status)
			if q.Limit != 0 {
				v.Set("limit", strconv.Itoa(q.Limit))
			}
			setParam(v, "pageToken", q.PageToken)
			return call{method: http.MethodGet, path: "/invoices", query: v}, nil
		}, func(resp *http.Response) (billing.InvoicePage, error) {
			invs, err := decodeJSONResponse[[]billing.Invoice](resp)
			if err != nil {
				return billing.InvoicePage{}, err
			}
			return billing.InvoicePage{Invoices: invs, NextPageToken: nextPageToken(resp.Header)}, nil
		}),
		IssueInvoiceEndpoint: clientEndpoint(c, func(r billing.IssueInvoiceRequest) (call, error) {
			return resourceCall(http.MethodPost, "/invoices", r.ID, "/issue")
		}, invoice),
		RecordPaymentEndpoint: clientEndpoint(c, func(r billing.PaymentRequest) (call, error) {
			cl, err := resourceCall(http.MethodPost, "/invoices", r.InvoiceID, "/payments")
			if err != nil {
				return call{}, err
			}
			cl.body = r
			if r.IdempotencyKey != "" {
				cl.header.Set("Idempotency-Key", r.IdempotencyKey)
			}
			return cl, nil
		}, invoice),
		VoidInvoiceEndpoint: clientEndpoint(c, func(r billing.VoidInvoiceRequest) (call, error) {
			return resourceCall(http.MethodPost, "/invoices", r.ID, "/void")
		}, invoice),
	}, nil
}
