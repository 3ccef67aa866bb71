package billing

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/validate"
)

// parseID checks that s is a UUID and returns it in canonical lower-case form; field names
// the field in the error.
func parseID(s, field string) (string, error) { return validate.ID(s, field) }

// ParseID checks that s is a UUID (as ids of accounts, invoices and patients are) and
// returns it in canonical lower-case form.
func ParseID(s string) (string, error) { return parseID(s, "id") }

// draft is a validated, normalised invoice request: what the store writes.
type draft struct {
	PatientID string
	Currency  Currency
	DueDate   string
	Lines     []Line
	Subtotal  int64
}

// validateInvoice checks a create request and computes its lines' amounts and subtotal,
// reporting every bad field at once under the contract's field names (lines[2].quantity).
func validateInvoice(req CreateInvoiceRequest) (draft, error) {
	var bad errs.Fields
	var d draft
	if id, err := parseID(req.PatientID, "patientId"); err != nil {
		bad.Add("patientId", "must be a UUID")
	} else {
		d.PatientID = id
	}
	cur, ok := LookupCurrency(req.Currency)
	switch {
	case req.Currency == "":
		bad.Add("currency", "must not be blank")
	case !ok:
		bad.Add("currency", "must be a current ISO 4217 currency code")
	default:
		d.Currency = cur
	}
	if date, msg := validate.Date(req.DueDate); msg != "" {
		bad.Add("dueDate", msg)
	} else {
		d.DueDate = date.Format(validate.DateLayout)
	}
	switch n := len(req.Lines); {
	case n == 0:
		bad.Add("lines", "must have at least one line")
	case n > MaxLines:
		bad.Add("lines", fmt.Sprintf("must have at most %d lines", MaxLines))
	}
	if len(req.Lines) <= MaxLines {
		d.Lines = make([]Line, 0, len(req.Lines))
		for i, in := range req.Lines {
			f := func(name string) string { return fmt.Sprintf("lines[%d].%s", i, name) }
			desc := strings.TrimSpace(in.Description)
			validate.Text(&bad, f("description"), desc, MaxDescriptionLen, false)
			if in.Quantity < 1 || in.Quantity > MaxQuantity {
				bad.Add(f("quantity"), fmt.Sprintf("must be an integer from 1 to %d", MaxQuantity))
			}
			if in.UnitAmount < 0 || in.UnitAmount > MaxUnitAmount {
				bad.Add(f("unitAmount"), fmt.Sprintf("must be an integer from 0 to %d minor units", int64(MaxUnitAmount)))
			}
			if in.Currency != "" && ok && !strings.EqualFold(in.Currency, cur.Code) {
				bad.Add(f("currency"), "must be the invoice's currency: an invoice is in one currency")
			}
			amount, err := MulAmount(in.Quantity, in.UnitAmount)
			if err != nil {
				bad.Add(f("unitAmount"), "quantity × unitAmount is too large")
			}
			d.Lines = append(d.Lines, Line{Description: desc, Quantity: in.Quantity, UnitAmount: in.UnitAmount, Amount: amount})
		}
	}
	if err := bad.Err(); err != nil {
		return draft{}, err
	}
	sub, err := subtotal(d.Lines)
	if err != nil {
		return draft{}, errs.Invalid(map[string]string{"lines": "the subtotal is too large"})
	}
	d.Subtotal = sub
	return d, nil
}

// subtotal adds the lines' amounts exactly, refusing overflow.
func subtotal(lines []Line) (int64, error) {
	var sum int64
	for _, l := range lines {
		var err error
		if sum, err = AddAmount(sum, l.Amount); err != nil {
			return 0, err
		}
	}
	return sum, nil
}

// validatePayment checks a payment request's own fields (the invoice decides the rest).
func validatePayment(req PaymentRequest) (id string, err error) {
	var bad errs.Fields
	id, idErr := ParseID(req.InvoiceID)
	if idErr != nil {
		bad.Add("id", "must be a UUID")
	}
	if req.Amount <= 0 {
		bad.Add("amount", "must be more than 0 minor units")
	}
	if !slices.Contains(PaymentMethods, req.Method) {
		bad.Add("method", "must be one of "+strings.Join(PaymentMethods, ", "))
	}
	if req.Currency != "" {
		if _, ok := LookupCurrency(req.Currency); !ok {
			bad.Add("currency", "must be a current ISO 4217 currency code")
		}
	}
	if len(req.IdempotencyKey) > MaxIdempotencyKey {
		bad.Add("Idempotency-Key", "must be at most 200 characters")
	}
	return id, bad.Err()
}
