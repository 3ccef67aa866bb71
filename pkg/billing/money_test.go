package billing

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/pms/pms/pkg/platform/errs"
)

func TestLookupCurrency(t *testing.T) {
	for code, exp := range map[string]int{"USD": 2, "eur": 2, "JPY": 0, "KRW": 0, "CLP": 0, "BHD": 3, "KWD": 3,
		"OMR": 3, "TND": 3, "JOD": 3, "IQD": 3, "LYD": 3, "CLF": 4, "UYW": 4, "XCG": 2, "ZWG": 2, "XOF": 0} {
		c, ok := LookupCurrency(code)
		if !ok || c.Exponent != exp || c.Code != strings.ToUpper(code) {
			t.Errorf("LookupCurrency(%q) = %+v, %v; want exponent %d", code, c, ok, exp)
		}
	}
	for _, code := range []string{"", "US", "USDX", "XXX", "XTS", "XAU", "XDR", "HRK", "ANG", "ZWL", "ABC", "US$", "ÜSD", "123"} {
		if c, ok := LookupCurrency(code); ok {
			t.Errorf("LookupCurrency(%q) = %+v, want unknown", code, c)
		}
	}
	if len(currencies) < 150 {
		t.Errorf("only %d currencies: the list is not ISO 4217's", len(currencies))
	}
	for code, exp := range currencies {
		if len(code) != 3 || strings.ToUpper(code) != code || exp < 0 || exp > 4 {
			t.Errorf("bad entry %q: %d", code, exp)
		}
	}
}

func TestFormat(t *testing.T) {
	cur := func(code string) Currency { c, _ := LookupCurrency(code); return c }
	for _, tc := range []struct {
		c      Currency
		amount int64
		want   string
	}{
		{cur("USD"), 123456, "1234.56 USD"},
		{cur("USD"), 5, "0.05 USD"},
		{cur("USD"), 0, "0.00 USD"},
		{cur("USD"), -5, "-0.05 USD"},
		{cur("JPY"), 1500, "1500 JPY"},
		{cur("BHD"), 12345, "12.345 BHD"},
		{cur("KWD"), 1, "0.001 KWD"},
		{cur("CLF"), 10000, "1.0000 CLF"},
		{cur("USD"), math.MaxInt64, "92233720368547758.07 USD"},
		{cur("USD"), math.MinInt64, "-92233720368547758.08 USD"},
	} {
		if got := tc.c.Format(tc.amount); got != tc.want {
			t.Errorf("Format(%d %s) = %q, want %q", tc.amount, tc.c.Code, got, tc.want)
		}
	}
}

func TestCheckedArithmetic(t *testing.T) {
	if v, err := MulAmount(MaxQuantity, MaxUnitAmount); err != nil || v != 10_000_000_000_000_000 {
		t.Errorf("largest line = %d, %v", v, err)
	}
	for _, tc := range [][2]int64{{math.MaxInt64, 2}, {1 << 32, 1 << 31}, {3_037_000_500, 3_037_000_500}, {math.MaxInt64, math.MaxInt64}} {
		if _, err := MulAmount(tc[0], tc[1]); !errors.Is(err, ErrOverflow) {
			t.Errorf("MulAmount(%d, %d) = %v, want overflow", tc[0], tc[1], err)
		}
	}
	if _, err := MulAmount(-1, 5); errs.KindOf(err) != errs.InvalidArgument {
		t.Errorf("negative quantity: %v", err)
	}
	if v, err := MulAmount(3_037_000_499, 3_037_000_499); err != nil || v != 9_223_372_030_926_249_001 {
		t.Errorf("MulAmount near the limit = %d, %v", v, err)
	}
	if v, err := AddAmount(math.MaxInt64-1, 1); err != nil || v != math.MaxInt64 {
		t.Errorf("AddAmount to the limit = %d, %v", v, err)
	}
	for _, tc := range [][2]int64{{math.MaxInt64, 1}, {math.MinInt64, -1}, {1 << 62, 1 << 62}} {
		if _, err := AddAmount(tc[0], tc[1]); !errors.Is(err, ErrOverflow) {
			t.Errorf("AddAmount(%d, %d) = %v, want overflow", tc[0], tc[1], err)
		}
	}
	lines := []Line{{Amount: math.MaxInt64 - 10}, {Amount: 10}}
	if v, err := subtotal(lines); err != nil || v != math.MaxInt64 {
		t.Errorf("subtotal at the limit = %d, %v", v, err)
	}
	if _, err := subtotal(append(lines, Line{Amount: 1})); !errors.Is(err, ErrOverflow) {
		t.Errorf("subtotal past the limit: %v", err)
	}
}

func TestMoneyRefusesMixedCurrencies(t *testing.T) {
	if _, err := (Money{100, "USD"}).Add(Money{100, "EUR"}); !errors.Is(err, ErrMixedCurrency) {
		t.Errorf("USD + EUR: %v", err)
	}
	if m, err := (Money{100, "JPY"}).Add(Money{50, "JPY"}); err != nil || m != (Money{150, "JPY"}) {
		t.Errorf("JPY + JPY = %+v, %v", m, err)
	}
	if _, err := (Money{math.MaxInt64, "BHD"}).Add(Money{1, "BHD"}); !errors.Is(err, ErrOverflow) {
		t.Errorf("overflow: %v", err)
	}
}

// TestWorstCaseInvoiceFits: the contract's bounds (100 lines of 10000 × 10^12) keep every
// subtotal inside int64, so a valid invoice never meets the overflow check.
func TestWorstCaseInvoiceFits(t *testing.T) {
	req := CreateInvoiceRequest{PatientID: "6f1c1f8e-3c1a-4a53-9d0e-2b8f5f1e7a10", Currency: "KWD", DueDate: "2026-12-31"}
	for range MaxLines {
		req.Lines = append(req.Lines, LineInput{Description: "x", Quantity: MaxQuantity, UnitAmount: MaxUnitAmount})
	}
	d, err := validateInvoice(req)
	if err != nil || d.Subtotal != 1_000_000_000_000_000_000 {
		t.Fatalf("worst case = %d, %v", d.Subtotal, err)
	}
}
