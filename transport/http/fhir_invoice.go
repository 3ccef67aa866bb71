package httptransport

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/typed"
)

// FHIR Invoice (docs/fhir.md, "Account and Invoice"): billing's invoices, read and searched by
// patient (and status) over billing's endpoints, so billing's roles and audit apply.

// invoiceStatuses maps billing's invoice states to FHIR's invoice-status (one place):
// a draft is a draft, an open (issued, unpaid) invoice is issued, a paid one is balanced,
// a void one is cancelled. FHIR's entered-in-error has no billing state.
var invoiceStatuses = map[billing.Status]string{
	billing.StatusDraft: "draft",
	billing.StatusOpen:  "issued",
	billing.StatusPaid:  "balanced",
	billing.StatusVoid:  "cancelled",
}

// fhirInvoice is the FHIR R4 Invoice resource as the facade writes it.
type fhirInvoice struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id"`
	Meta         *fhirMeta         `json:"meta,omitempty"`
	Status       string            `json:"status"`
	Subject      *fhirReference    `json:"subject,omitempty"`
	Date         string            `json:"date,omitempty"`
	Account      *fhirReference    `json:"account,omitempty"`
	LineItem     []fhirInvoiceLine `json:"lineItem,omitempty"`
	TotalNet     *fhirMoney        `json:"totalNet,omitempty"`
	TotalGross   *fhirMoney        `json:"totalGross,omitempty"`
	PaymentTerms string            `json:"paymentTerms,omitempty"`
	Note         []fhirAnnotation  `json:"note,omitempty"`
}

type fhirInvoiceLine struct {
	Sequence                  int                  `json:"sequence"`
	ChargeItemCodeableConcept fhirCodeableConcept  `json:"chargeItemCodeableConcept"`
	PriceComponent            []fhirPriceComponent `json:"priceComponent"`
}

type fhirPriceComponent struct {
	Type   string      `json:"type"`
	Factor json.Number `json:"factor,omitempty"`
	Amount *fhirMoney  `json:"amount,omitempty"`
}

// fhirMoney is FHIR Money: a decimal value and an ISO 4217 currency. The value is written
// from the integer minor units with the currency's decimals (12.50 EUR, 1500 JPY, 1.250 BHD),
// never through floating point.
type fhirMoney struct {
	Value    json.Number `json:"value"`
	Currency string      `json:"currency"`
}

type fhirAnnotation struct {
	Time string `json:"time,omitempty"`
	Text string `json:"text"`
}

// money is minor units of currency code as FHIR Money.
func money(amount int64, code string) *fhirMoney {
	c, ok := billing.LookupCurrency(code)
	if !ok {
		c = billing.Currency{Code: code, Exponent: 0}
	}
	v, _, _ := strings.Cut(c.Format(amount), " ")
	return &fhirMoney{Value: json.Number(v), Currency: c.Code}
}

// invoiceToFHIR maps an invoice: status (invoiceStatuses), the patient and account, the
// creation date, one line item per line (its description as the charge item, one base price
// component: the line's amount, the quantity as its factor), subtotal as both totals (billing
// has no tax), the due date as payment terms, and each payment as a note (amount, method).
func invoiceToFHIR(inv billing.Invoice) fhirInvoice {
	res := fhirInvoice{ResourceType: "Invoice", ID: inv.ID, Status: invoiceStatuses[inv.Status],
		Meta:    &fhirMeta{VersionID: strconv.FormatInt(inv.Version, 10), LastUpdated: fhirInstant(inv.UpdatedAt)},
		Subject: &fhirReference{Reference: "Patient/" + inv.PatientID},
		Date:    fhirInstant(inv.CreatedAt), TotalNet: money(inv.Subtotal, inv.Currency), TotalGross: money(inv.Subtotal, inv.Currency)}
	if res.Status == "" {
		res.Status = "entered-in-error" // a state this mapping does not know: never served as valid
	}
	if inv.AccountID != "" {
		res.Account = &fhirReference{Reference: "Account/" + inv.AccountID}
	}
	for i, l := range inv.Lines {
		res.LineItem = append(res.LineItem, fhirInvoiceLine{Sequence: i + 1,
			ChargeItemCodeableConcept: fhirCodeableConcept{Text: l.Description},
			PriceComponent: []fhirPriceComponent{{Type: "base", Factor: json.Number(strconv.FormatInt(l.Quantity, 10)),
				Amount: money(l.Amount, inv.Currency)}}})
	}
	if inv.DueDate != "" {
		res.PaymentTerms = "Due " + inv.DueDate
	}
	for _, p := range inv.Payments {
		m := money(p.Amount, inv.Currency)
		res.Note = append(res.Note, fhirAnnotation{Time: fhirInstant(p.At),
			Text: "Payment " + p.ID + ": " + string(m.Value) + " " + m.Currency + " by " + p.Method})
	}
	return res
}

func decodeFHIRInvoiceRead(_ context.Context, r *http.Request) (billing.GetInvoiceRequest, error) {
	id, err := fhirPathID(r)
	return billing.GetInvoiceRequest{ID: id}, err
}

func encodeFHIRInvoice(_ context.Context, h http.Header, inv billing.Invoice) (int, any, error) {
	h.Set("ETag", fhirETag(inv.Version))
	if !inv.UpdatedAt.IsZero() {
		h.Set("Last-Modified", inv.UpdatedAt.UTC().Format(http.TimeFormat))
	}
	return http.StatusOK, invoiceToFHIR(inv), nil
}

// decodeFHIRInvoiceSearch reads GET /Invoice?patient=Patient/{id}&status=&_count=.
func decodeFHIRInvoiceSearch(_ context.Context, r *http.Request) (resourceSearch, error) {
	return parseResourceSearch(r, "Invoice", func(rs *resourceSearch, name, v string, bad *errs.Fields, unsupported func(string, string)) paramResult {
		if name != "status" {
			return paramUnknown
		}
		for s, code := range invoiceStatuses {
			if code == v {
				rs.Status = string(s)
				return paramApplied
			}
		}
		if v == "entered-in-error" {
			unsupported(name, "no invoice is entered-in-error here")
			return paramDropped
		}
		bad.Add(name, "must be draft, issued, balanced or cancelled")
		return paramDropped
	})
}

// invoiceSearchResponse is a page of invoices with the search that found them.
type invoiceSearchResponse struct {
	Page billing.InvoicePage
	Req  resourceSearch
}

// fhirInvoiceSearch serves an Invoice search over ListInvoices.
func fhirInvoiceSearch(list endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, req any) (any, error) {
		rs, ok := req.(resourceSearch)
		if !ok {
			return list(ctx, req) // a rejected request: the guard answers first
		}
		pg, err := typed.Call[billing.InvoicePage](ctx, list, billing.InvoiceQuery{PatientID: rs.PatientID, Status: rs.Status,
			Limit: min(rs.Count, billing.MaxLimit), PageToken: rs.PageToken})
		if err != nil {
			return nil, err
		}
		return invoiceSearchResponse{Page: pg, Req: rs}, nil
	}
}

func encodeFHIRInvoices(ctx context.Context, _ http.Header, r invoiceSearchResponse) (int, any, error) {
	ids := make([]string, len(r.Page.Invoices))
	res := make([]any, len(r.Page.Invoices))
	for i, inv := range r.Page.Invoices {
		ids[i], res[i] = inv.ID, invoiceToFHIR(inv)
	}
	return http.StatusOK, resourceBundle(ctx, r.Req, r.Page.NextPageToken, ids, res, true), nil
}
