package httptransport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/transport/wire"
)

// NewBillingHandler serves the billing API of API.md ("Billing") from the endpoint set,
// under o.Prefix (the gateway mounts it under /api/billing), behind Wrap. Accounts are opened
// over gRPC (and from the patient topic), so no route creates one.
func NewBillingHandler(set billing.Set, o Options) http.Handler {
	r := NewRouter()
	p := o.prefix()
	Handle(r, o, http.MethodGet, "/accounts", set.ListAccountsEndpoint, decodeListAccounts, encodeAccounts)
	Handle(r, o, http.MethodGet, "/accounts/{id}", set.GetAccountEndpoint, decodeGetAccount, encodeOK[billing.Account])
	Handle(r, o, http.MethodPost, "/invoices", set.CreateInvoiceEndpoint, decodeCreateInvoice, encodeCreatedInvoice(p))
	Handle(r, o, http.MethodGet, "/invoices", set.ListInvoicesEndpoint, decodeListInvoices, encodeInvoicePage(p))
	Handle(r, o, http.MethodGet, "/invoices/{id}", set.GetInvoiceEndpoint, decodeGetInvoice, encodeInvoice)
	Handle(r, o, http.MethodPost, "/invoices/{id}/issue", set.IssueInvoiceEndpoint, decodeIssueInvoice, encodeInvoice)
	Handle(r, o, http.MethodPost, "/invoices/{id}/payments", set.RecordPaymentEndpoint, decodeRecordPayment, encodeInvoice)
	Handle(r, o, http.MethodPost, "/invoices/{id}/void", set.VoidInvoiceEndpoint, decodeVoidInvoice, encodeInvoice)
	Handle(r, o, http.MethodGet, "/audit/verify", set.VerifyAuditEndpoint, decodeVerifyAudit[billing.VerifyAuditRequest], encodeOK[audit.Report])
	Handle(r, o, http.MethodGet, "/audit", set.AuditEndpoint, decodeAuditQuery("subjectId"),
		func(_ context.Context, _ http.Header, r billing.AuditResponse) (int, any) {
			return http.StatusOK, nonNil(r.Entries)
		})
	return Wrap(r, o)
}

// decodeListAccounts reads GET /accounts?patientId=.
func decodeListAccounts(_ context.Context, r *http.Request) (billing.AccountQuery, error) {
	q, err := ParseQuery(r, "patientId")
	if err != nil {
		return billing.AccountQuery{}, err
	}
	return billing.AccountQuery{PatientID: q.Get("patientId")}, q.Err()
}

func decodeGetAccount(_ context.Context, r *http.Request) (billing.GetAccountRequest, error) {
	id, err := idOnly(r)
	return billing.GetAccountRequest{ID: id}, err
}

// decodeCreateInvoice reads POST /invoices: the JSON body and an optional Idempotency-Key.
func decodeCreateInvoice(_ context.Context, r *http.Request) (billing.CreateInvoiceRequest, error) {
	if err := noQuery(r); err != nil {
		return billing.CreateInvoiceRequest{}, err
	}
	key, err := idempotencyKey(r.Header)
	if err != nil {
		return billing.CreateInvoiceRequest{}, err
	}
	req, err := DecodeJSON[billing.CreateInvoiceRequest](r)
	if err != nil {
		return billing.CreateInvoiceRequest{}, err
	}
	req.IdempotencyKey = key
	return req, nil
}

// decodeListInvoices reads GET /invoices?patientId=&status=&limit=&pageToken=.
func decodeListInvoices(_ context.Context, r *http.Request) (billing.InvoiceQuery, error) {
	q, err := ParseQuery(r, "patientId", "status", "limit", "pageToken")
	if err != nil {
		return billing.InvoiceQuery{}, err
	}
	iq := billing.InvoiceQuery{
		PatientID: q.Get("patientId"), Status: q.Get("status"),
		Limit: q.Int("limit", 0, 1, billing.MaxLimit), PageToken: q.Get("pageToken"),
	}
	return iq, q.Err()
}

func decodeGetInvoice(_ context.Context, r *http.Request) (billing.GetInvoiceRequest, error) {
	id, err := idOnly(r)
	return billing.GetInvoiceRequest{ID: id}, err
}

func decodeIssueInvoice(_ context.Context, r *http.Request) (billing.IssueInvoiceRequest, error) {
	id, err := actionOnly(r)
	return billing.IssueInvoiceRequest{ID: id}, err
}

func decodeVoidInvoice(_ context.Context, r *http.Request) (billing.VoidInvoiceRequest, error) {
	id, err := actionOnly(r)
	return billing.VoidInvoiceRequest{ID: id}, err
}

// decodeRecordPayment reads POST /invoices/{id}/payments: {"amount","method","currency"?}
// and an optional Idempotency-Key.
func decodeRecordPayment(_ context.Context, r *http.Request) (billing.PaymentRequest, error) {
	id, err := idOnly(r)
	if err != nil {
		return billing.PaymentRequest{}, err
	}
	key, err := idempotencyKey(r.Header)
	if err != nil {
		return billing.PaymentRequest{}, err
	}
	req, err := DecodeJSON[billing.PaymentRequest](r)
	if err != nil {
		return billing.PaymentRequest{}, err
	}
	req.InvoiceID, req.IdempotencyKey = id, key
	return req, nil
}

// actionOnly reads a state-change route (issue, void): the path id, no query, and no body
// or an empty JSON object, so a client that always sends {} is served and one that sends
// fields expecting them to mean something is told they do not.
func actionOnly(r *http.Request) (string, error) {
	id, err := idOnly(r)
	if err != nil {
		return "", err
	}
	if r.Body == nil || r.ContentLength == 0 {
		return id, nil
	}
	// A body of unknown length: empty is fine, anything else must be {}.
	var first [1]byte
	n, rerr := io.ReadFull(r.Body, first[:])
	if n == 0 && (rerr == io.EOF || errors.Is(rerr, io.ErrUnexpectedEOF)) {
		return id, nil
	}
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(first[:n]), r.Body))
	_, err = DecodeJSON[struct{}](r)
	return id, err
}

func encodeAccounts(_ context.Context, _ http.Header, r billing.AccountsResponse) (int, any) {
	return http.StatusOK, nonNil(r.Accounts)
}

// invoicePath is the path of one invoice as the client addresses it.
func invoicePath(prefix, id string) string { return prefix + "/invoices/" + url.PathEscape(id) }

// encodeInvoice writes an invoice with its ETag.
func encodeInvoice(_ context.Context, h http.Header, inv billing.Invoice) (int, any) {
	h.Set("ETag", wire.ETag(inv.Version))
	return http.StatusOK, inv
}

// encodeCreatedInvoice writes 201 with the invoice's Location and ETag (a replayed create
// answers the same).
func encodeCreatedInvoice(prefix string) func(context.Context, http.Header, billing.Invoice) (int, any) {
	return func(ctx context.Context, h http.Header, inv billing.Invoice) (int, any) {
		h.Set("Location", invoicePath(prefix, inv.ID))
		_, body := encodeInvoice(ctx, h, inv)
		return http.StatusCreated, body
	}
}

// encodeInvoicePage writes a page of invoices (never null) and a Link to the next page that
// repeats the caller's filters.
func encodeInvoicePage(prefix string) func(context.Context, http.Header, billing.InvoicePage) (int, any) {
	return func(ctx context.Context, h http.Header, pg billing.InvoicePage) (int, any) {
		if pg.NextPageToken != "" {
			q := requestQuery(ctx)
			q.Set("pageToken", pg.NextPageToken)
			h.Set("Link", "<"+prefix+"/invoices?"+q.Encode()+`>; rel="next"`)
		}
		return http.StatusOK, nonNil(pg.Invoices)
	}
}

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
		VerifyAuditEndpoint: clientEndpoint(c, verifyCall[billing.VerifyAuditRequest]("/audit/verify"), decodeJSONResponse[audit.Report]),
		AuditEndpoint: clientEndpoint(c, auditCall("/audit", "subjectId"), func(resp *http.Response) (billing.AuditResponse, error) {
			e, err := decodeJSONResponse[[]audit.Record](resp)
			return billing.AuditResponse{Entries: e}, err
		}),
	}, nil
}
