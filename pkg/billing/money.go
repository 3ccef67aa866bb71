package billing

import (
	"math"
	"math/bits"
	"strconv"
	"strings"

	"github.com/pms/pms/pkg/platform/errs"
)

// Currency is an ISO 4217 alphabetic code with its minor-unit exponent: amounts are counted
// in minor units (cents for USD, yen for JPY, fils for BHD), so Exponent says where a
// human would put the decimal point, and nothing in billing ever uses floating point.
type Currency struct {
	Code     string
	Exponent int
}

// currencies is ISO 4217 list one (current funds included, as amended through 2025), with
// each code's minor unit. Codes without a minor unit (precious metals, XDR, XSU, XUA, the
// bond-market units, XTS, XXX) are not money an invoice can be written in and are left out;
// so are withdrawn codes (HRK, SLL, ZWL, ANG, CUC, BGN).
var currencies = map[string]int{
	"AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2, "AZN": 2,
	"BAM": 2, "BBD": 2, "BDT": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2, "BOB": 2, "BOV": 2,
	"BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2,
	"CAD": 2, "CDF": 2, "CHE": 2, "CHF": 2, "CHW": 2, "CLF": 4, "CLP": 0, "CNY": 2, "COP": 2,
	"COU": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2,
	"DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2,
	"EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2,
	"FJD": 2, "FKP": 2,
	"GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2, "GNF": 0, "GTQ": 2, "GYD": 2,
	"HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2,
	"IDR": 2, "ILS": 2, "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0,
	"JMD": 2, "JOD": 3, "JPY": 0,
	"KES": 2, "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2,
	"LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3,
	"MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2,
	"MVR": 2, "MWK": 2, "MXN": 2, "MXV": 2, "MYR": 2, "MZN": 2,
	"NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2, "NZD": 2,
	"OMR": 3,
	"PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0,
	"QAR": 2,
	"RON": 2, "RSD": 2, "RUB": 2, "RWF": 0,
	"SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2,
	"SRD": 2, "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2,
	"THB": 2, "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2,
	"UAH": 2, "UGX": 0, "USD": 2, "USN": 2, "UYI": 0, "UYU": 2, "UYW": 4, "UZS": 2,
	"VED": 2, "VES": 2, "VND": 0, "VUV": 0,
	"WST": 2,
	"XAF": 0, "XCD": 2, "XCG": 2, "XOF": 0, "XPF": 0,
	"YER": 2,
	"ZAR": 2, "ZMW": 2, "ZWG": 2,
}

// LookupCurrency returns the currency with ISO code (upper or lower case), and false for a
// code that is not a current ISO 4217 currency.
func LookupCurrency(code string) (Currency, bool) {
	if len(code) != 3 {
		return Currency{}, false
	}
	code = strings.ToUpper(code)
	exp, ok := currencies[code]
	if !ok {
		return Currency{}, false
	}
	return Currency{Code: code, Exponent: exp}, true
}

// Format renders amount minor units of c with the decimal point where ISO puts it, for
// messages people read ("12.345 BHD", "1500 JPY", "-0.05 USD"); it never goes through floats.
func (c Currency) Format(amount int64) string {
	neg := amount < 0
	// The magnitude of MinInt64 does not fit an int64; as an unsigned number it does.
	mag := uint64(amount)
	if neg {
		mag = -mag
	}
	digits := strconv.FormatUint(mag, 10)
	if c.Exponent > 0 {
		if len(digits) <= c.Exponent {
			digits = strings.Repeat("0", c.Exponent-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-c.Exponent] + "." + digits[len(digits)-c.Exponent:]
	}
	if neg {
		digits = "-" + digits
	}
	return digits + " " + c.Code
}

// ErrOverflow is an amount that does not fit 64 bits. Validation bounds every input well
// below it, so reaching it means a bound was lost; it is refused, never wrapped around.
var ErrOverflow = errs.New(errs.InvalidArgument, "the amount is too large")

// MulAmount returns quantity × unit exactly, or ErrOverflow.
func MulAmount(quantity, unit int64) (int64, error) {
	if quantity < 0 || unit < 0 {
		return 0, errs.New(errs.InvalidArgument, "amounts and quantities must not be negative")
	}
	hi, lo := bits.Mul64(uint64(quantity), uint64(unit))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, ErrOverflow
	}
	return int64(lo), nil
}

// AddAmount returns a + b exactly, or ErrOverflow.
func AddAmount(a, b int64) (int64, error) {
	sum := a + b
	// Overflow happened when both operands have the sign the sum lacks.
	if (a >= 0) == (b >= 0) && (sum >= 0) != (a >= 0) {
		return 0, ErrOverflow
	}
	return sum, nil
}

// Money is an amount in minor units of one currency. Adding money of two currencies is
// refused: there is no exchange rate in billing, so such a sum would be meaningless.
type Money struct {
	Amount   int64
	Currency string
}

// ErrMixedCurrency is an attempt to combine amounts of different currencies.
var ErrMixedCurrency = errs.New(errs.InvalidArgument, "amounts in different currencies cannot be combined")

// Add returns m + o, refusing mixed currencies and overflow.
func (m Money) Add(o Money) (Money, error) {
	if m.Currency != o.Currency {
		return Money{}, ErrMixedCurrency
	}
	sum, err := AddAmount(m.Amount, o.Amount)
	if err != nil {
		return Money{}, err
	}
	return Money{Amount: sum, Currency: m.Currency}, nil
}
