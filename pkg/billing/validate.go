package billing

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/pms/pms/pkg/platform/errs"
)

const dateLayout = "2006-01-02"

// earliestDueDate bounds due dates from below, as the patient service bounds its dates.
var earliestDueDate = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

// parseID checks that s is a UUID and returns it in canonical lower-case form; field names
// the field in the error.
func parseID(s, field string) (string, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", errs.Invalid(map[string]string{field: "must be a UUID"})
	}
	return u.String(), nil
}

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
	if date, msg := parseDate(req.DueDate); msg != "" {
		bad.Add("dueDate", msg)
	} else {
		d.DueDate = date.Format(dateLayout)
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
			switch n := utf8.RuneCountInString(desc); {
			case n == 0:
				bad.Add(f("description"), "must not be blank")
			case n > MaxDescriptionLen:
				bad.Add(f("description"), fmt.Sprintf("must be at most %d characters", MaxDescriptionLen))
			case !printable(desc):
				bad.Add(f("description"), "must not contain control characters")
			}
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

// parseDate parses a real ISO date no earlier than 1900-01-01.
func parseDate(s string) (time.Time, string) {
	if s == "" {
		return time.Time{}, "must not be blank"
	}
	d, err := time.Parse(dateLayout, s)
	if err != nil || len(s) != len(dateLayout) {
		return time.Time{}, "must be a real date in the form YYYY-MM-DD"
	}
	if d.Before(earliestDueDate) {
		return time.Time{}, "must not be before 1900-01-01"
	}
	return d, ""
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return false
		}
	}
	return true
}
