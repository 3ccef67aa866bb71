package billing

import (
	"strings"
	"testing"

	"github.com/pms/pms/pkg/platform/errs"
)

const pid = "6f1c1f8e-3c1a-4a53-9d0e-2b8f5f1e7a10"

func validInvoice() CreateInvoiceRequest {
	return CreateInvoiceRequest{PatientID: pid, Currency: "USD", DueDate: "2026-12-31",
		Lines: []LineInput{{Description: "Consultation", Quantity: 2, UnitAmount: 7550}}}
}

func TestValidateInvoice(t *testing.T) {
	d, err := validateInvoice(CreateInvoiceRequest{PatientID: strings.ToUpper(pid), Currency: "usd", DueDate: "2026-02-28",
		Lines: []LineInput{{Description: "  X-ray ", Quantity: 3, UnitAmount: 1999, Currency: "USD"}, {Description: "Free", Quantity: 1, UnitAmount: 0}}})
	if err != nil || d.PatientID != pid || d.Currency.Code != "USD" || d.Subtotal != 5997 || d.Lines[0].Description != "X-ray" || d.Lines[0].Amount != 5997 {
		t.Fatalf("valid request: %+v %v", d, err)
	}
	lines := func(n int) []LineInput {
		out := make([]LineInput, n)
		for i := range out {
			out[i] = LineInput{Description: "x", Quantity: 1, UnitAmount: 1}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		edit  func(r *CreateInvoiceRequest)
		field string
	}{
		{"no patient", func(r *CreateInvoiceRequest) { r.PatientID = "" }, "patientId"},
		{"bad patient", func(r *CreateInvoiceRequest) { r.PatientID = "42" }, "patientId"},
		{"no currency", func(r *CreateInvoiceRequest) { r.Currency = "" }, "currency"},
		{"unknown currency", func(r *CreateInvoiceRequest) { r.Currency = "ABC" }, "currency"},
		{"test currency", func(r *CreateInvoiceRequest) { r.Currency = "XTS" }, "currency"},
		{"withdrawn currency", func(r *CreateInvoiceRequest) { r.Currency = "HRK" }, "currency"},
		{"symbol", func(r *CreateInvoiceRequest) { r.Currency = "$" }, "currency"},
		{"no due date", func(r *CreateInvoiceRequest) { r.DueDate = "" }, "dueDate"},
		{"unreal due date", func(r *CreateInvoiceRequest) { r.DueDate = "2026-02-30" }, "dueDate"},
		{"due date with time", func(r *CreateInvoiceRequest) { r.DueDate = "2026-02-03T00:00:00Z" }, "dueDate"},
		{"ancient due date", func(r *CreateInvoiceRequest) { r.DueDate = "1899-12-31" }, "dueDate"},
		{"no lines", func(r *CreateInvoiceRequest) { r.Lines = nil }, "lines"},
		{"101 lines", func(r *CreateInvoiceRequest) { r.Lines = lines(101) }, "lines"},
		{"blank description", func(r *CreateInvoiceRequest) { r.Lines[0].Description = "  " }, "lines[0].description"},
		{"long description", func(r *CreateInvoiceRequest) { r.Lines[0].Description = strings.Repeat("é", 201) }, "lines[0].description"},
		{"control in description", func(r *CreateInvoiceRequest) { r.Lines[0].Description = "a\x00b" }, "lines[0].description"},
		{"invalid UTF-8", func(r *CreateInvoiceRequest) { r.Lines[0].Description = "a\xffb" }, "lines[0].description"},
		{"zero quantity", func(r *CreateInvoiceRequest) { r.Lines[0].Quantity = 0 }, "lines[0].quantity"},
		{"negative quantity", func(r *CreateInvoiceRequest) { r.Lines[0].Quantity = -1 }, "lines[0].quantity"},
		{"huge quantity", func(r *CreateInvoiceRequest) { r.Lines[0].Quantity = 10001 }, "lines[0].quantity"},
		{"negative amount", func(r *CreateInvoiceRequest) { r.Lines[0].UnitAmount = -1 }, "lines[0].unitAmount"},
		{"huge amount", func(r *CreateInvoiceRequest) { r.Lines[0].UnitAmount = MaxUnitAmount + 1 }, "lines[0].unitAmount"},
		{"overflowing line", func(r *CreateInvoiceRequest) { r.Lines[0].Quantity, r.Lines[0].UnitAmount = 1<<40, 1<<40 }, "lines[0].unitAmount"},
		{"mixed currency", func(r *CreateInvoiceRequest) {
			r.Lines = append(r.Lines, LineInput{Description: "y", Quantity: 1, UnitAmount: 1, Currency: "EUR"})
		}, "lines[1].currency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := validInvoice()
			tc.edit(&r)
			_, err := validateInvoice(r)
			e := errs.As(err)
			if e == nil || e.Kind != errs.InvalidArgument || e.Fields[tc.field] == "" {
				t.Fatalf("err = %v (fields %v), want invalid %s", err, e.Fields, tc.field)
			}
		})
	}
	// Every problem is reported at once.
	_, err = validateInvoice(CreateInvoiceRequest{Lines: []LineInput{{}}})
	if f := errs.As(err).Fields; len(f) != 5 {
		t.Errorf("fields = %v, want patientId, currency, dueDate, lines[0].description, lines[0].quantity", f)
	}
}

func TestValidatePayment(t *testing.T) {
	ok := PaymentRequest{InvoiceID: pid, Amount: 1, Method: MethodCard}
	if id, err := validatePayment(ok); err != nil || id != pid {
		t.Fatalf("valid payment: %v", err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(r *PaymentRequest)
		field string
	}{
		{"bad id", func(r *PaymentRequest) { r.InvoiceID = "x" }, "id"},
		{"zero", func(r *PaymentRequest) { r.Amount = 0 }, "amount"},
		{"negative", func(r *PaymentRequest) { r.Amount = -100 }, "amount"},
		{"no method", func(r *PaymentRequest) { r.Method = "" }, "method"},
		{"unknown method", func(r *PaymentRequest) { r.Method = "bitcoin" }, "method"},
		{"method case", func(r *PaymentRequest) { r.Method = "Card" }, "method"},
		{"unknown currency", func(r *PaymentRequest) { r.Currency = "ZZZ" }, "currency"},
		{"long key", func(r *PaymentRequest) { r.IdempotencyKey = strings.Repeat("k", 201) }, "Idempotency-Key"},
	} {
		r := ok
		tc.edit(&r)
		_, err := validatePayment(r)
		if e := errs.As(err); e == nil || e.Kind != errs.InvalidArgument || e.Fields[tc.field] == "" {
			t.Errorf("%s: err = %v, want invalid %s", tc.name, err, tc.field)
		}
	}
}

func TestPageToken(t *testing.T) {
	if n, ok := decodePageToken(encodePageToken(42)); !ok || n != 42 {
		t.Errorf("round trip = %d, %v", n, ok)
	}
	for _, bad := range []string{"garbage", "", strings.Repeat("a", 65), encodePageToken(0), "cDEuNQ"} {
		if _, ok := decodePageToken(bad); ok {
			t.Errorf("token %q accepted", bad)
		}
	}
}
