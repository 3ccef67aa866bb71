package httptransport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/gorilla/mux"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

const invID = "9c0b1f1e-6d4a-4e57-8c2f-3a1b5d7e9f00"

var (
	billAccount = billing.Account{ID: "a0b1c2d3-0000-4000-8000-000000000001", PatientID: testID, Status: "active", CreatedAt: testTime}
	billInvoice = billing.Invoice{
		ID: invID, PatientID: testID, AccountID: billAccount.ID, Currency: "BHD", Status: billing.StatusOpen, DueDate: "2026-12-31",
		Lines:    []billing.Line{{Description: "Consultation", Quantity: 3, UnitAmount: 12345, Amount: 37035}},
		Subtotal: 37035, AmountPaid: 35, AmountDue: 37000,
		Payments: []billing.Payment{{ID: "p1", Amount: 35, Method: "cash", At: testTime}},
		Version:  4, CreatedAt: testTime, UpdatedAt: testTime,
	}
)

// stubBilling is a billing.Service that records what reached it and answers as configured.
type stubBilling struct {
	mu       sync.Mutex
	calls    int
	last     any
	ctx      context.Context
	err      error
	accounts []billing.Account
	page     billing.InvoicePage
	audit    []audit.Record
}

func (s *stubBilling) record(ctx context.Context, req any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.last, s.ctx = req, ctx
	return s.err
}

func (s *stubBilling) seen() (int, any, context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.last, s.ctx
}

func (s *stubBilling) CreateAccount(ctx context.Context, r billing.CreateAccountRequest) (billing.Account, error) {
	return billAccount, s.record(ctx, r)
}
func (s *stubBilling) GetAccount(ctx context.Context, id string) (billing.Account, error) {
	return billAccount, s.record(ctx, id)
}
func (s *stubBilling) ListAccounts(ctx context.Context, q billing.AccountQuery) ([]billing.Account, error) {
	return s.accounts, s.record(ctx, q)
}
func (s *stubBilling) CreateInvoice(ctx context.Context, r billing.CreateInvoiceRequest) (billing.Invoice, error) {
	return billInvoice, s.record(ctx, r)
}
func (s *stubBilling) GetInvoice(ctx context.Context, id string) (billing.Invoice, error) {
	return billInvoice, s.record(ctx, id)
}
func (s *stubBilling) ListInvoices(ctx context.Context, q billing.InvoiceQuery) (billing.InvoicePage, error) {
	return s.page, s.record(ctx, q)
}
func (s *stubBilling) IssueInvoice(ctx context.Context, id string) (billing.Invoice, error) {
	return billInvoice, s.record(ctx, "issue "+id)
}
func (s *stubBilling) RecordPayment(ctx context.Context, r billing.PaymentRequest) (billing.Invoice, error) {
	return billInvoice, s.record(ctx, r)
}
func (s *stubBilling) VoidInvoice(ctx context.Context, id string) (billing.Invoice, error) {
	return billInvoice, s.record(ctx, "void "+id)
}
func (s *stubBilling) Audit(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	return s.audit, s.record(ctx, q)
}
func (s *stubBilling) VerifyAudit(ctx context.Context) (audit.Report, error) {
	return audit.Report{Service: "billing", OK: true}, s.record(ctx, billing.VerifyAuditRequest{})
}

type billingEnv struct {
	stub   *stubBilling
	srv    *httptest.Server
	client billing.Set
}

func newBillingEnv(t *testing.T, o Options) *billingEnv {
	t.Helper()
	stub := &stubBilling{}
	o.Logger = log.NewNopLogger()
	srv := httptest.NewServer(NewBillingHandler(billing.NewEndpoints(stub, billing.EndpointOptions{Guard: authz.AllowAnonymous()}), o))
	t.Cleanup(srv.Close)
	client, err := NewBillingClient(srv.URL+o.Prefix, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &billingEnv{stub: stub, srv: srv, client: client}
}

func (e *billingEnv) do(t *testing.T, method, path string, body io.Reader, headers ...string) (*http.Response, []byte) {
	t.Helper()
	return (&testEnv{srv: e.srv}).do(t, method, path, body, headers...)
}

func sameInvoice(t *testing.T, b []byte) {
	t.Helper()
	if got := decodeBody[billing.Invoice](t, b); !reflect.DeepEqual(got, billInvoice) {
		t.Errorf("invoice body %s", b)
	}
}

func TestBillingRoutes(t *testing.T) {
	for _, prefix := range []string{"", "/api/billing"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			e := newBillingEnv(t, Options{Prefix: prefix})
			p := prefix
			check := func(want any) {
				t.Helper()
				if _, last, _ := e.stub.seen(); !reflect.DeepEqual(last, want) {
					t.Errorf("service got %#v, want %#v", last, want)
				}
			}

			resp, b := e.do(t, "POST", p+"/invoices", strings.NewReader(
				`{"patientId":"`+testID+`","currency":"BHD","dueDate":"2026-12-31","lines":[{"description":"Consultation","quantity":3,"unitAmount":12345},{"description":"Tea","quantity":1,"unitAmount":0,"currency":"BHD"}]}`),
				"Content-Type", "application/json", "Idempotency-Key", "inv-1")
			if resp.StatusCode != 201 || resp.Header.Get("Location") != p+"/invoices/"+invID || resp.Header.Get("ETag") != `"4"` {
				t.Fatalf("create: %d %v %s", resp.StatusCode, resp.Header, b)
			}
			sameInvoice(t, b)
			check(billing.CreateInvoiceRequest{PatientID: testID, Currency: "BHD", DueDate: "2026-12-31", IdempotencyKey: "inv-1",
				Lines: []billing.LineInput{{Description: "Consultation", Quantity: 3, UnitAmount: 12345}, {Description: "Tea", Quantity: 1, Currency: "BHD"}}})

			resp, b = e.do(t, "GET", p+"/invoices/"+invID, nil)
			if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"4"` {
				t.Errorf("get: %d %s", resp.StatusCode, b)
			}
			sameInvoice(t, b)
			check(invID)

			// The JSON shape the contract fixes.
			shape := decodeBody[map[string]any](t, b)
			for _, k := range []string{"id", "patientId", "accountId", "currency", "status", "dueDate", "lines", "subtotal", "amountPaid", "amountDue", "payments", "version", "createdAt", "updatedAt"} {
				if _, ok := shape[k]; !ok {
					t.Errorf("invoice lacks %q: %s", k, b)
				}
			}
			if len(shape) != 14 {
				t.Errorf("invoice has %d fields: %s", len(shape), b)
			}

			for _, action := range []string{"issue", "void"} {
				resp, b = e.do(t, "POST", p+"/invoices/"+invID+"/"+action, nil)
				if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"4"` {
					t.Errorf("%s: %d %s", action, resp.StatusCode, b)
				}
				check(action + " " + invID)
				resp, b = e.do(t, "POST", p+"/invoices/"+invID+"/"+action, strings.NewReader(" {} "), jsonCT...)
				if resp.StatusCode != 200 {
					t.Errorf("%s with {}: %d %s", action, resp.StatusCode, b)
				}
			}

			resp, b = e.do(t, "POST", p+"/invoices/"+invID+"/payments", strings.NewReader(`{"amount":35,"method":"cash","currency":"BHD"}`),
				"Content-Type", "application/json", "Idempotency-Key", "pay-1")
			if resp.StatusCode != 200 || resp.Header.Get("Location") != "" {
				t.Errorf("pay: %d %v %s", resp.StatusCode, resp.Header, b)
			}
			sameInvoice(t, b)
			check(billing.PaymentRequest{InvoiceID: invID, Amount: 35, Method: "cash", Currency: "BHD", IdempotencyKey: "pay-1"})

			e.stub.page = billing.InvoicePage{Invoices: []billing.Invoice{billInvoice}, NextPageToken: "t/+ 1"}
			resp, b = e.do(t, "GET", p+"/invoices?patientId="+testID+"&status=open&limit=1", nil)
			wantLink := "<" + p + "/invoices?limit=1&pageToken=t%2F%2B+1&patientId=" + testID + `&status=open>; rel="next"`
			if resp.StatusCode != 200 || resp.Header.Get("Link") != wantLink {
				t.Errorf("list: %d %q", resp.StatusCode, resp.Header.Get("Link"))
			}
			if got := decodeBody[[]billing.Invoice](t, b); len(got) != 1 || !reflect.DeepEqual(got[0], billInvoice) {
				t.Errorf("list body %s", b)
			}
			check(billing.InvoiceQuery{PatientID: testID, Status: "open", Limit: 1})
			e.stub.page = billing.InvoicePage{}
			resp, b = e.do(t, "GET", p+"/invoices", nil)
			if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "[]" || resp.Header.Get("Link") != "" {
				t.Errorf("empty list: %d %s", resp.StatusCode, b)
			}

			resp, b = e.do(t, "GET", p+"/accounts/"+billAccount.ID, nil)
			if got := decodeBody[billing.Account](t, b); resp.StatusCode != 200 || got != billAccount {
				t.Errorf("get account: %d %s", resp.StatusCode, b)
			}
			if acc := decodeBody[map[string]any](t, b); len(acc) != 4 {
				t.Errorf("account shape %s", b)
			}
			resp, b = e.do(t, "GET", p+"/accounts?patientId="+testID, nil)
			if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "[]" {
				t.Errorf("no accounts: %d %s", resp.StatusCode, b)
			}
			check(billing.AccountQuery{PatientID: testID})
			e.stub.accounts = []billing.Account{billAccount}
			resp, b = e.do(t, "GET", p+"/accounts?patientId="+testID, nil)
			if got := decodeBody[[]billing.Account](t, b); resp.StatusCode != 200 || len(got) != 1 || got[0] != billAccount {
				t.Errorf("accounts: %d %s", resp.StatusCode, b)
			}
		})
	}
}

func TestBillingClientRoundTrip(t *testing.T) {
	for _, prefix := range []string{"", "/api/billing"} {
		e := newBillingEnv(t, Options{Prefix: prefix})
		ctx := observe.WithRequestID(context.Background(), "rid-7")
		ctx = authz.WithToken(ctx, "tok")
		c := e.client
		check := func(name string, got any, err error, want any, wantReq any) {
			t.Helper()
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("%s = %#v, %v", name, got, err)
			}
			_, last, sctx := e.stub.seen()
			if !reflect.DeepEqual(last, wantReq) {
				t.Errorf("%s: service got %#v, want %#v", name, last, wantReq)
			}
			if observe.RequestID(sctx) != "rid-7" || authz.Token(sctx) != "tok" {
				t.Errorf("%s: id %q token %q", name, observe.RequestID(sctx), authz.Token(sctx))
			}
		}
		cr := billing.CreateInvoiceRequest{PatientID: testID, Currency: "jpy", DueDate: "2026-01-31", IdempotencyKey: "k",
			Lines: []billing.LineInput{{Description: "x", Quantity: 2, UnitAmount: 500, Currency: "JPY"}}}
		inv, err := c.CreateInvoice(ctx, cr)
		check("CreateInvoice", inv, err, billInvoice, cr)
		inv, err = c.GetInvoice(ctx, invID)
		check("GetInvoice", inv, err, billInvoice, invID)
		inv, err = c.IssueInvoice(ctx, invID)
		check("IssueInvoice", inv, err, billInvoice, "issue "+invID)
		inv, err = c.VoidInvoice(ctx, invID)
		check("VoidInvoice", inv, err, billInvoice, "void "+invID)
		pr := billing.PaymentRequest{InvoiceID: invID, Amount: 1, Method: "insurance", IdempotencyKey: "p"}
		inv, err = c.RecordPayment(ctx, pr)
		check("RecordPayment", inv, err, billInvoice, pr)
		e.stub.page = billing.InvoicePage{Invoices: []billing.Invoice{billInvoice}, NextPageToken: "next&=/"}
		iq := billing.InvoiceQuery{PatientID: testID, Status: "paid", Limit: 3, PageToken: "a b"}
		pg, err := c.ListInvoices(ctx, iq)
		check("ListInvoices", pg, err, e.stub.page, iq)
		e.stub.page = billing.InvoicePage{}
		pg, err = c.ListInvoices(ctx, billing.InvoiceQuery{})
		check("ListInvoices empty", pg, err, billing.InvoicePage{Invoices: []billing.Invoice{}}, billing.InvoiceQuery{})
		a, err := c.GetAccount(ctx, billAccount.ID)
		check("GetAccount", a, err, billAccount, billAccount.ID)
		e.stub.accounts = []billing.Account{billAccount}
		as, err := c.ListAccounts(ctx, billing.AccountQuery{PatientID: testID})
		check("ListAccounts", as, err, []billing.Account{billAccount}, billing.AccountQuery{PatientID: testID})

		n, _, _ := e.stub.seen()
		if _, err := c.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: testID}); errs.KindOf(err) != errs.MethodNotAllowed {
			t.Errorf("CreateAccount over HTTP: %v", err)
		}
		if _, err := c.GetInvoice(ctx, ""); errs.KindOf(err) != errs.InvalidArgument {
			t.Errorf("empty id: %v", err)
		}
		if n2, _, _ := e.stub.seen(); n2 != n {
			t.Error("a call without a route reached the service")
		}
	}
}

func TestBillingErrorKindsRoundTrip(t *testing.T) {
	e := newBillingEnv(t, Options{})
	for _, k := range errs.Kinds {
		e.stub.err = &errs.Error{Kind: k, Message: "msg " + string(k), Fields: map[string]string{"lines[0].quantity": "bad"}, RetryAfter: time.Second}
		resp, b := e.do(t, "POST", "/invoices/"+invID+"/issue", nil)
		checkError(t, resp, b, statusTable[k], k)
		if resp.Header.Get("ETag") != "" {
			t.Errorf("%s: ETag on an error", k)
		}
		for name, call := range map[string]func() error{
			"create": func() error {
				_, err := e.client.CreateInvoice(context.Background(), billing.CreateInvoiceRequest{})
				return err
			},
			"pay": func() error {
				_, err := e.client.RecordPayment(context.Background(), billing.PaymentRequest{InvoiceID: invID})
				return err
			},
			"list": func() error {
				_, err := e.client.ListInvoices(context.Background(), billing.InvoiceQuery{})
				return err
			},
			"accounts": func() error {
				_, err := e.client.ListAccounts(context.Background(), billing.AccountQuery{PatientID: testID})
				return err
			},
		} {
			got := errs.As(call())
			if got.Kind != k {
				t.Errorf("%s %s: client got %v", name, k, got)
			}
			if k != errs.Internal && (got.Message != "msg "+string(k) || got.Fields["lines[0].quantity"] != "bad") {
				t.Errorf("%s %s: message %q fields %v", name, k, got.Message, got.Fields)
			}
		}
	}
	for _, sent := range []error{billing.ErrNoAccount, billing.ErrIdempotencyConflict, billing.ErrInvoiceNotFound} {
		e.stub.err = sent
		if _, err := e.client.GetInvoice(context.Background(), invID); !errors.Is(err, sent) || err.Error() != sent.Error() {
			t.Errorf("sent %v, got %v", sent, err)
		}
	}
}

// TestBillingAudit: GET /audit decodes the contract's audit query, answers the entries in
// the contract's shape (an empty log is []), and the HTTP client sends the same query.
func TestBillingAudit(t *testing.T) {
	for _, prefix := range []string{"", "/api/billing"} {
		e := newBillingEnv(t, Options{Prefix: prefix})
		resp, b := e.do(t, "GET", prefix+"/audit", nil)
		if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "[]" {
			t.Fatalf("empty audit log: %d %s", resp.StatusCode, b)
		}
		at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
		e.stub.audit = []audit.Record{{ID: "e1", At: at, Actor: "u1", Role: "admin", Action: "read_invoice", SubjectID: testID,
			Outcome: "success", RequestID: "r1", ClientAddress: "10.0.0.1"}}
		resp, b = e.do(t, "GET", prefix+"/audit?subjectId="+testID+"&actor=u1&from=2026-12-01&to=2026-12-04T10:00:00Z&limit=5", nil)
		want := audit.Query{SubjectID: testID, Actor: "u1", From: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), To: at, Limit: 5}
		if _, last, _ := e.stub.seen(); resp.StatusCode != 200 || !reflect.DeepEqual(last, want) {
			t.Fatalf("audit: %d %s; service got %#v, want %#v", resp.StatusCode, b, last, want)
		}
		shape := decodeBody[[]map[string]any](t, b)
		for _, k := range []string{"id", "at", "actor", "role", "action", "subjectId", "outcome", "requestId", "clientAddress"} {
			if _, ok := shape[0][k]; !ok || len(shape[0]) != 9 {
				t.Errorf("entry lacks %q or has extra fields: %s", k, b)
			}
		}
		got, err := e.client.Audit(context.Background(), want)
		if _, last, _ := e.stub.seen(); err != nil || !reflect.DeepEqual(got, e.stub.audit) || !reflect.DeepEqual(last, want) {
			t.Fatalf("client Audit = %+v, %v; service got %#v", got, err, last)
		}
	}
}

func TestBillingBadInput(t *testing.T) {
	e := newBillingEnv(t, Options{})
	valid := `{"patientId":"` + testID + `","currency":"USD","dueDate":"2026-12-31","lines":[{"description":"x","quantity":1,"unitAmount":1}]}`
	big := strings.Repeat(" ", 2<<20) + valid
	inv := "/invoices/" + invID
	h := func(kv ...string) []string { return kv }
	withCT := func(kv ...string) []string { return append(append([]string{}, jsonCT...), kv...) }
	cases := []struct {
		name, method, path string
		body               io.Reader
		headers            []string
		status             int
		kind               errs.Kind
		field              string
	}{
		{"malformed JSON", "POST", "/invoices", strings.NewReader(`{"patientId": }`), withCT(), 400, errs.InvalidArgument, ""},
		{"truncated JSON", "POST", "/invoices", strings.NewReader(`{"lines":[{"quantity":1}`), withCT(), 400, errs.InvalidArgument, ""},
		{"unknown field", "POST", "/invoices", strings.NewReader(`{"subtotal":5}`), withCT(), 400, errs.InvalidArgument, "subtotal"},
		{"unknown line field", "POST", "/invoices", strings.NewReader(`{"lines":[{"amount":5}]}`), withCT(), 400, errs.InvalidArgument, "amount"},
		{"status in body", "POST", "/invoices", strings.NewReader(`{"status":"paid"}`), withCT(), 400, errs.InvalidArgument, "status"},
		{"idempotency key in body", "POST", "/invoices", strings.NewReader(`{"IdempotencyKey":"k"}`), withCT(), 400, errs.InvalidArgument, "IdempotencyKey"},
		{"fractional quantity", "POST", "/invoices", strings.NewReader(`{"lines":[{"quantity":1.5}]}`), withCT(), 400, errs.InvalidArgument, "lines.quantity"},
		{"exponent amount", "POST", "/invoices", strings.NewReader(`{"lines":[{"unitAmount":1e3}]}`), withCT(), 400, errs.InvalidArgument, "lines.unitAmount"},
		{"overflowing amount", "POST", "/invoices", strings.NewReader(`{"lines":[{"unitAmount":99999999999999999999}]}`), withCT(), 400, errs.InvalidArgument, "lines.unitAmount"},
		{"string quantity", "POST", "/invoices", strings.NewReader(`{"lines":[{"quantity":"2"}]}`), withCT(), 400, errs.InvalidArgument, "lines.quantity"},
		{"lines not array", "POST", "/invoices", strings.NewReader(`{"lines":{}}`), withCT(), 400, errs.InvalidArgument, "lines"},
		{"currency not string", "POST", "/invoices", strings.NewReader(`{"currency":840}`), withCT(), 400, errs.InvalidArgument, "currency"},
		{"empty body", "POST", "/invoices", strings.NewReader(""), withCT(), 400, errs.InvalidArgument, ""},
		{"array body", "POST", "/invoices", strings.NewReader(`[]`), withCT(), 400, errs.InvalidArgument, ""},
		{"trailing data", "POST", "/invoices", strings.NewReader(valid + `{}`), withCT(), 400, errs.InvalidArgument, ""},
		{"invalid UTF-8", "POST", "/invoices", strings.NewReader("{\"currency\":\"\xff\"}"), withCT(), 400, errs.InvalidArgument, ""},
		{"2 MiB body", "POST", "/invoices", strings.NewReader(big), withCT(), 413, errs.PayloadTooLarge, ""},
		{"2 MiB chunked payment", "POST", inv + "/payments", io.MultiReader(strings.NewReader(big)), withCT(), 413, errs.PayloadTooLarge, ""},
		{"2 MiB chunked issue", "POST", inv + "/issue", io.MultiReader(strings.NewReader(big)), withCT(), 413, errs.PayloadTooLarge, ""},
		{"wrong Content-Type", "POST", "/invoices", strings.NewReader(valid), h("Content-Type", "text/plain"), 415, errs.UnsupportedMediaType, ""},
		{"missing Content-Type", "POST", inv + "/payments", strings.NewReader(`{"amount":1,"method":"cash"}`), nil, 415, errs.UnsupportedMediaType, ""},
		{"Idempotency-Key too long", "POST", "/invoices", strings.NewReader(valid), withCT("Idempotency-Key", strings.Repeat("k", 201)), 400, errs.InvalidArgument, "Idempotency-Key"},
		{"Idempotency-Key twice", "POST", inv + "/payments", strings.NewReader(`{}`), withCT("Idempotency-Key", "a", "Idempotency-Key", "b"), 400, errs.InvalidArgument, "Idempotency-Key"},
		{"Idempotency-Key control", "POST", "/invoices", strings.NewReader(valid), withCT("Idempotency-Key", "a\tb"), 400, errs.InvalidArgument, "Idempotency-Key"},
		{"payment amount fraction", "POST", inv + "/payments", strings.NewReader(`{"amount":10.5,"method":"cash"}`), withCT(), 400, errs.InvalidArgument, "amount"},
		{"payment amount string", "POST", inv + "/payments", strings.NewReader(`{"amount":"10","method":"cash"}`), withCT(), 400, errs.InvalidArgument, "amount"},
		{"payment unknown field", "POST", inv + "/payments", strings.NewReader(`{"amount":10,"method":"cash","invoiceId":"x"}`), withCT(), 400, errs.InvalidArgument, "invoiceId"},
		{"issue with fields", "POST", inv + "/issue", strings.NewReader(`{"status":"paid"}`), withCT(), 400, errs.InvalidArgument, "status"},
		{"void with garbage", "POST", inv + "/void", strings.NewReader(`x`), withCT(), 400, errs.InvalidArgument, ""},
		{"void with text body", "POST", inv + "/void", strings.NewReader(`{}`), h("Content-Type", "text/plain"), 415, errs.UnsupportedMediaType, ""},
		{"over-long id", "GET", "/invoices/" + strings.Repeat("a", 65), nil, nil, 400, errs.InvalidArgument, "id"},
		{"over-long id payment", "POST", "/invoices/" + strings.Repeat("a", 65) + "/payments", strings.NewReader(`{}`), withCT(), 400, errs.InvalidArgument, "id"},
		{"over-long account id", "GET", "/accounts/" + strings.Repeat("a", 65), nil, nil, 400, errs.InvalidArgument, "id"},
		{"limit=0", "GET", "/invoices?limit=0", nil, nil, 400, errs.InvalidArgument, "limit"},
		{"limit huge", "GET", "/invoices?limit=501", nil, nil, 400, errs.InvalidArgument, "limit"},
		{"limit=abc", "GET", "/invoices?limit=abc", nil, nil, 400, errs.InvalidArgument, "limit"},
		{"unknown list param", "GET", "/invoices?currency=USD", nil, nil, 400, errs.InvalidArgument, "currency"},
		{"repeated status", "GET", "/invoices?status=open&status=paid", nil, nil, 400, errs.InvalidArgument, "status"},
		{"malformed query", "GET", "/invoices?status=%zz", nil, nil, 400, errs.InvalidArgument, ""},
		{"unknown account param", "GET", "/accounts?email=x", nil, nil, 400, errs.InvalidArgument, "email"},
		{"query on get", "GET", inv + "?expand=lines", nil, nil, 400, errs.InvalidArgument, "expand"},
		{"query on create", "POST", "/invoices?dryRun=1", strings.NewReader(valid), withCT(), 400, errs.InvalidArgument, "dryRun"},
		{"query on issue", "POST", inv + "/issue?force=1", nil, nil, 400, errs.InvalidArgument, "force"},
		{"audit limit huge", "GET", "/audit?limit=1001", nil, nil, 400, errs.InvalidArgument, "limit"},
		{"audit unknown param", "GET", "/audit?patientId=" + testID, nil, nil, 400, errs.InvalidArgument, "patientId"},
		{"audit to before from", "GET", "/audit?from=2026-12-02&to=2026-11-30", nil, nil, 400, errs.InvalidArgument, "to"},
		{"audit bad instant", "GET", "/audit?from=yesterday", nil, nil, 400, errs.InvalidArgument, "from"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, b := e.do(t, c.method, c.path, c.body, c.headers...)
			eb := checkError(t, resp, b, c.status, c.kind)
			if c.field != "" {
				if _, ok := eb.Fields[c.field]; !ok {
					t.Errorf("fields %v lack %q", eb.Fields, c.field)
				}
			}
			if n, _, _ := e.stub.seen(); n != 0 {
				t.Errorf("the service was called %d times", n)
			}
		})
	}
}

func TestBillingUnknownRouteAndMethod(t *testing.T) {
	e := newBillingEnv(t, Options{})
	for _, path := range []string{"/accounts/", "/invoices/" + invID + "/refund", "/invoices/" + invID + "/payments/x", "/Invoices", "/patients"} {
		resp, b := e.do(t, "GET", path, nil)
		checkError(t, resp, b, 404, errs.NotFound)
	}
	for _, c := range []struct{ method, path, allow string }{
		{"POST", "/accounts", "GET"},
		{"PUT", "/accounts/" + billAccount.ID, "GET"},
		{"DELETE", "/invoices", "GET, POST"},
		{"PUT", "/invoices/" + invID, "GET"},
		{"GET", "/invoices/" + invID + "/issue", "POST"},
		{"GET", "/invoices/" + invID + "/payments", "POST"},
	} {
		resp, b := e.do(t, c.method, c.path, strings.NewReader("{}"), jsonCT...)
		checkError(t, resp, b, 405, errs.MethodNotAllowed)
		if got := resp.Header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow = %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	if n, _, _ := e.stub.seen(); n != 0 {
		t.Errorf("the service was called %d times", n)
	}
}

// TestPatientBillingRoutes: the patient service's billing reads over HTTP, both ways.
func TestPatientBillingRoutes(t *testing.T) {
	e := newEnv(t, Options{})
	e.stub.account = patient.BillingAccount{ID: billAccount.ID, PatientID: testID, Status: "active", CreatedAt: testTime}
	resp, b := e.do(t, "GET", "/patients/"+testID+"/billing-account", nil)
	if got := decodeBody[patient.BillingAccount](t, b); resp.StatusCode != 200 || got != e.stub.account {
		t.Errorf("billing account: %d %s", resp.StatusCode, b)
	}
	if _, last, _ := e.stub.seen(); last != testID {
		t.Errorf("service got %v", last)
	}
	resp, b = e.do(t, "GET", "/patients/"+testID+"/invoices", nil)
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("no invoices: %d %s", resp.StatusCode, b)
	}
	e.stub.invoices = []patient.Invoice{{ID: invID, PatientID: testID, Currency: "JPY", Status: "draft", DueDate: "2026-01-01",
		Lines: []patient.InvoiceLine{{Description: "x", Quantity: 1, UnitAmount: 500, Amount: 500}}, Subtotal: 500, AmountDue: 500,
		Payments: []patient.InvoicePayment{}, Version: 1, CreatedAt: testTime, UpdatedAt: testTime}}
	got, err := e.client.Invoices(context.Background(), testID)
	if err != nil || !reflect.DeepEqual(got, e.stub.invoices) {
		t.Errorf("client invoices = %+v, %v", got, err)
	}
	if a, err := e.client.BillingAccount(context.Background(), testID); err != nil || a != e.stub.account {
		t.Errorf("client account = %+v, %v", a, err)
	}
	e.stub.err = errs.New(errs.Unavailable, "the billing service is unavailable")
	resp, b = e.do(t, "GET", "/patients/"+testID+"/billing-account", nil)
	checkError(t, resp, b, 503, errs.Unavailable)
	if _, err := e.client.Invoices(context.Background(), testID); errs.KindOf(err) != errs.Unavailable {
		t.Errorf("client: %v", err)
	}
	e.stub.err = nil
	resp, b = e.do(t, "GET", "/patients/"+testID+"/invoices?status=open", nil)
	checkError(t, resp, b, 400, errs.InvalidArgument)
	resp, b = e.do(t, "POST", "/patients/"+testID+"/billing-account", nil)
	checkError(t, resp, b, 405, errs.MethodNotAllowed)
}

func FuzzDecodeCreateInvoice(f *testing.F) {
	seeds := append([]string{
		`{"patientId":"` + testID + `","currency":"USD","dueDate":"2026-12-31","lines":[{"description":"x","quantity":1,"unitAmount":1}]}`,
		`{"lines":[{"description":"x","quantity":1,"unitAmount":1,"currency":"EUR"}]}`,
		`{"lines":[{"quantity":1e400}]}`, `{"lines":[{"unitAmount":-9223372036854775809}]}`, `{"lines":null}`,
		`{"lines":[null]}`, `{"lines":[[]]}`, `{"lines":` + strings.Repeat(`[`, 10001) + `}`,
	}, fuzzSeeds...)
	for _, s := range seeds {
		f.Add([]byte(s), "k")
	}
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		r := httptest.NewRequest("POST", "/invoices", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header["Idempotency-Key"] = []string{key}
		req, err := decodeCreateInvoice(context.Background(), r)
		checkDecodeError(t, err)
		if err == nil && req.IdempotencyKey != strings.TrimSpace(key) {
			t.Fatalf("key %q decoded as %q", key, req.IdempotencyKey)
		}
	})
}

func FuzzDecodeRecordPayment(f *testing.F) {
	for _, s := range append([]string{`{"amount":1,"method":"cash"}`, `{"amount":-1}`, `{"amount":1.0}`, `{"currency":null}`}, fuzzSeeds...) {
		f.Add([]byte(s), invID)
	}
	f.Fuzz(func(t *testing.T, body []byte, id string) {
		r := httptest.NewRequest("POST", "/invoices/x/payments", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r = mux.SetURLVars(r, map[string]string{"id": id})
		req, err := decodeRecordPayment(context.Background(), r)
		checkDecodeError(t, err)
		if err == nil && req.InvoiceID != id {
			t.Fatalf("id %q decoded as %q", id, req.InvoiceID)
		}
	})
}
