package httptransport

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/transport/wire"
)

const testID = "5f0c1c52-8a53-4c8e-9d43-6c1f0e2b7a11"

var (
	testTime    = time.Date(2026, 3, 4, 5, 6, 7, 891000000, time.UTC)
	testPatient = patient.Patient{
		ID: testID, MRN: "MRN-000042", Name: "Ada Lovelace", Email: "ada@example.org",
		Family: "Lovelace", Given: []string{"Ada", "Augusta"}, Gender: "female", Phone: "+44 20 7946 0958",
		Identifiers: []patient.Identifier{{System: patient.SystemMRN, Value: "MRN-000042"}, {System: "https://example.org/nid", Value: "N1"}},
		Address:     "12 St James's Square, London", DateOfBirth: "1915-12-10", RegisteredDate: "2026-03-04",
		Version: 3, CreatedAt: testTime, UpdatedAt: testTime,
	}
)

// stubService is a patient.Service that records what reached it and answers as configured.
type stubService struct {
	mu      sync.Mutex
	calls   int
	last    any
	ctx     context.Context
	err     error
	hook    func(ctx context.Context)
	patient patient.Patient
	page    patient.Page
	history []patient.Version
	audit   []patient.AuditEntry
	// account and invoices answer the billing reads.
	account  patient.BillingAccount
	invoices []patient.Invoice
	// accessLog answers AccessLog.
	accessLog patient.AccessLogPage
}

func (s *stubService) record(ctx context.Context, req any) error {
	s.mu.Lock()
	s.calls++
	s.last, s.ctx = req, ctx
	hook, err := s.hook, s.err
	s.mu.Unlock()
	if hook != nil {
		hook(ctx)
	}
	return err
}

func (s *stubService) seen() (int, any, context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.last, s.ctx
}

func (s *stubService) Create(ctx context.Context, r patient.CreateRequest) (patient.Patient, error) {
	return s.patient, s.record(ctx, r)
}
func (s *stubService) Get(ctx context.Context, id string) (patient.Patient, error) {
	return s.patient, s.record(ctx, id)
}
func (s *stubService) List(ctx context.Context, q patient.ListQuery) (patient.Page, error) {
	return s.page, s.record(ctx, q)
}
func (s *stubService) Update(ctx context.Context, r patient.UpdateRequest) (patient.Patient, error) {
	return s.patient, s.record(ctx, r)
}
func (s *stubService) Delete(ctx context.Context, r patient.DeleteRequest) error {
	return s.record(ctx, r)
}
func (s *stubService) History(ctx context.Context, id string) ([]patient.Version, error) {
	return s.history, s.record(ctx, id)
}
func (s *stubService) Audit(ctx context.Context, q patient.AuditQuery) ([]patient.AuditEntry, error) {
	return s.audit, s.record(ctx, q)
}
func (s *stubService) VerifyAudit(ctx context.Context) (audit.Report, error) {
	return audit.Report{Service: "patient", OK: true}, s.record(ctx, patient.VerifyAuditRequest{})
}

func (s *stubService) AccessLog(ctx context.Context, q patient.AccessLogQuery) (patient.AccessLogPage, error) {
	return s.accessLog, s.record(ctx, q)
}

func (s *stubService) BillingAccount(ctx context.Context, id string) (patient.BillingAccount, error) {
	return s.account, s.record(ctx, id)
}
func (s *stubService) Invoices(ctx context.Context, id string) ([]patient.Invoice, error) {
	return s.invoices, s.record(ctx, id)
}

// testEnv is a stub service behind the real endpoint set, handler and client, on loopback.
type testEnv struct {
	stub    *stubService
	handler http.Handler
	srv     *httptest.Server
	client  patient.Set
}

func newEnv(t *testing.T, o Options) *testEnv {
	t.Helper()
	stub := &stubService{patient: testPatient}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	h := NewPatientHandler(patient.NewEndpoints(stub, patient.EndpointOptions{Guard: authz.AllowAnonymous()}), o)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client, err := NewPatientClient(srv.URL+o.Prefix, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{stub: stub, handler: h, srv: srv, client: client}
}

// do sends a raw request; headers are name/value pairs.
func (e *testEnv) do(t *testing.T, method, path string, body io.Reader, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// jsonCT is the header pair of a JSON body.
var jsonCT = []string{"Content-Type", "application/json"}

// checkError asserts resp is the contract's error body with the given status and kind, and
// returns it.
func checkError(t *testing.T, resp *http.Response, body []byte, status int, kind errs.Kind) wire.ErrorBody {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	var eb wire.ErrorBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	if eb.Error != kind || eb.Message == "" {
		t.Errorf("error = %q message %q, want kind %q", eb.Error, eb.Message, kind)
	}
	if eb.RequestID == "" || eb.RequestID != resp.Header.Get(observe.RequestIDHeader) {
		t.Errorf("requestId %q, header %q", eb.RequestID, resp.Header.Get(observe.RequestIDHeader))
	}
	return eb
}

func decodeBody[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	return v
}

func ptr[T any](v T) *T { return &v }

func TestPatientRoutes(t *testing.T) {
	for _, prefix := range []string{"", "/api"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			e := newEnv(t, Options{Prefix: prefix})
			p := prefix

			resp, b := e.do(t, "POST", p+"/patients",
				strings.NewReader(`{"name":"Ada Lovelace","email":"ada@example.org","address":"x","dateOfBirth":"1915-12-10"}`),
				"Content-Type", "application/json; charset=utf-8", "Idempotency-Key", "key 1")
			if resp.StatusCode != 201 || resp.Header.Get("Location") != p+"/patients/"+testID || resp.Header.Get("ETag") != `"3"` {
				t.Fatalf("create: %d %v %s", resp.StatusCode, resp.Header, b)
			}
			if got := decodeBody[patient.Patient](t, b); !reflect.DeepEqual(got, testPatient) {
				t.Errorf("create body = %+v", got)
			}
			_, last, _ := e.stub.seen()
			wantCreate := patient.CreateRequest{Name: "Ada Lovelace", Email: "ada@example.org", Address: "x", DateOfBirth: "1915-12-10", IdempotencyKey: "key 1"}
			if !reflect.DeepEqual(last, wantCreate) {
				t.Errorf("service got %+v", last)
			}

			resp, b = e.do(t, "GET", p+"/patients/"+testID, nil)
			if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"3"` || !reflect.DeepEqual(decodeBody[patient.Patient](t, b), testPatient) {
				t.Errorf("get: %d %v %s", resp.StatusCode, resp.Header, b)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", resp.Header.Get("Cache-Control"))
			}

			e.stub.page = patient.Page{Patients: []patient.Patient{testPatient}, NextPageToken: "t/+= 2", Total: 7}
			resp, b = e.do(t, "GET", p+"/patients?q=l%C3%B6ve&limit=1&dateOfBirth=1915-12-10", nil)
			wantLink := "<" + p + `/patients?dateOfBirth=1915-12-10&limit=1&pageToken=t%2F%2B%3D+2&q=l%C3%B6ve>; rel="next"`
			if resp.StatusCode != 200 || resp.Header.Get("X-Total-Count") != "7" || resp.Header.Get("Link") != wantLink {
				t.Errorf("list: %d %v", resp.StatusCode, resp.Header)
			}
			if got := decodeBody[[]patient.Patient](t, b); len(got) != 1 || !reflect.DeepEqual(got[0], testPatient) {
				t.Errorf("list body %s", b)
			}
			_, last, _ = e.stub.seen()
			if want := (patient.ListQuery{Q: "löve", DateOfBirth: "1915-12-10", Limit: 1}); last != want {
				t.Errorf("service got %+v", last)
			}

			e.stub.page = patient.Page{}
			resp, b = e.do(t, "GET", p+"/patients", nil)
			if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "[]" || resp.Header.Get("X-Total-Count") != "0" || resp.Header.Get("Link") != "" {
				t.Errorf("empty list: %d %v %s", resp.StatusCode, resp.Header, b)
			}

			e.stub.patient.Version = 4
			resp, b = e.do(t, "PUT", p+"/patients/"+testID, strings.NewReader(
				`{"name":"A","email":"a@example.org","address":"y","dateOfBirth":"1915-12-10","id":"`+testID+`","mrn":"MRN-000042","version":3,"createdAt":"2026-03-04T05:06:07.891Z"}`),
				"Content-Type", "application/json", "If-Match", `W/"3"`)
			if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"4"` {
				t.Errorf("update: %d %v %s", resp.StatusCode, resp.Header, b)
			}
			_, last, _ = e.stub.seen()
			wantUpdate := patient.UpdateRequest{ID: testID, Name: "A", Email: "a@example.org", Address: "y", DateOfBirth: "1915-12-10", IfMatch: 3,
				Unchanged: patient.ReadOnlyFields{ID: ptr(testID), MRN: ptr("MRN-000042"), Version: ptr(int64(3)), CreatedAt: ptr("2026-03-04T05:06:07.891Z")}}
			if !reflect.DeepEqual(last, wantUpdate) {
				t.Errorf("service got %+v", last)
			}

			resp, b = e.do(t, "DELETE", p+"/patients/"+testID, nil, "If-Match", `"4"`)
			if resp.StatusCode != 204 || len(b) != 0 {
				t.Errorf("delete: %d %q", resp.StatusCode, b)
			}
			if _, last, _ = e.stub.seen(); last != (patient.DeleteRequest{ID: testID, IfMatch: 4}) {
				t.Errorf("service got %+v", last)
			}

			resp, b = e.do(t, "GET", p+"/patients/"+testID+"/history", nil)
			if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "[]" {
				t.Errorf("empty history: %d %s", resp.StatusCode, b)
			}
			e.stub.history = []patient.Version{{Version: 1, Change: patient.ChangeCreated, ChangedAt: testTime, ChangedBy: "u1", Patient: testPatient}}
			resp, b = e.do(t, "GET", p+"/patients/"+testID+"/history", nil)
			if got := decodeBody[[]patient.Version](t, b); resp.StatusCode != 200 || !reflect.DeepEqual(got, e.stub.history) {
				t.Errorf("history: %d %s", resp.StatusCode, b)
			}

			e.stub.audit = []patient.AuditEntry{{ID: "a1", At: testTime, Actor: "u1", Action: patient.ActionRead, PatientID: testID, Outcome: "allowed"}}
			resp, b = e.do(t, "GET", p+"/audit?patientId="+testID+"&actor=u1&from=2026-01-01&to=2026-01-31&limit=1000", nil)
			if got := decodeBody[[]patient.AuditEntry](t, b); resp.StatusCode != 200 || !reflect.DeepEqual(got, e.stub.audit) {
				t.Errorf("audit: %d %s", resp.StatusCode, b)
			}
			_, last, _ = e.stub.seen()
			wantAudit := patient.AuditQuery{PatientID: testID, Actor: "u1", Limit: 1000,
				From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}
			if last != wantAudit {
				t.Errorf("service got %+v", last)
			}
			e.do(t, "GET", p+"/audit?from=2026-01-01T10:00:00%2B02:00&to=2026-01-02T00:00:00Z", nil)
			_, last, _ = e.stub.seen()
			if q := last.(patient.AuditQuery); !q.From.Equal(time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)) || q.From.Location() != time.UTC || !q.To.Equal(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("audit instants %+v", q)
			}

			if prefix != "" {
				resp, b = e.do(t, "GET", "/patients/"+testID, nil)
				checkError(t, resp, b, 404, errs.NotFound)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, Options{})
	valid := `{"name":"A","email":"a@example.org","address":"x","dateOfBirth":"1990-01-01"}`
	big := strings.Repeat(" ", 2<<20) + valid
	pid := "/patients/" + testID
	type tc struct {
		name, method, path string
		body               io.Reader
		headers            []string
		status             int
		kind               errs.Kind
		field              string
	}
	h := func(kv ...string) []string { return kv }
	withCT := func(kv ...string) []string { return append(append([]string{}, jsonCT...), kv...) }
	cases := []tc{
		{"malformed JSON", "POST", "/patients", strings.NewReader(`{"name": }`), withCT(), 400, errs.InvalidArgument, ""},
		{"truncated JSON", "POST", "/patients", strings.NewReader(`{"name":"A"`), withCT(), 400, errs.InvalidArgument, ""},
		{"unknown field", "POST", "/patients", strings.NewReader(`{"name":"A","admin":true}`), withCT(), 400, errs.InvalidArgument, "admin"},
		{"wrong type", "POST", "/patients", strings.NewReader(`{"name":5}`), withCT(), 400, errs.InvalidArgument, "name"},
		{"huge number", "PUT", pid, strings.NewReader(`{"version":1e999}`), withCT(), 400, errs.InvalidArgument, "version"},
		{"read-only wrong type", "PUT", pid, strings.NewReader(`{"createdAt":5}`), withCT(), 400, errs.InvalidArgument, "createdAt"},
		{"empty body", "POST", "/patients", strings.NewReader(""), withCT(), 400, errs.InvalidArgument, ""},
		{"array body", "POST", "/patients", strings.NewReader(`[]`), withCT(), 400, errs.InvalidArgument, ""},
		{"null body", "POST", "/patients", strings.NewReader(`null`), withCT(), 400, errs.InvalidArgument, ""},
		{"string body", "PUT", pid, strings.NewReader(`"x"`), withCT(), 400, errs.InvalidArgument, ""},
		{"trailing data", "POST", "/patients", strings.NewReader(valid + `{}`), withCT(), 400, errs.InvalidArgument, ""},
		{"trailing brace", "POST", "/patients", strings.NewReader(valid + `}`), withCT(), 400, errs.InvalidArgument, ""},
		{"invalid UTF-8", "POST", "/patients", strings.NewReader("{\"name\":\"\xff\xfe\"}"), withCT(), 400, errs.InvalidArgument, ""},
		{"2 MiB body", "POST", "/patients", strings.NewReader(big), withCT(), 413, errs.PayloadTooLarge, ""},
		{"2 MiB chunked body", "PUT", pid, io.MultiReader(strings.NewReader(big)), withCT(), 413, errs.PayloadTooLarge, ""},
		{"wrong Content-Type", "POST", "/patients", strings.NewReader(valid), h("Content-Type", "text/plain"), 415, errs.UnsupportedMediaType, ""},
		{"missing Content-Type", "PUT", pid, strings.NewReader(valid), nil, 415, errs.UnsupportedMediaType, ""},
		{"other charset", "POST", "/patients", strings.NewReader(valid), h("Content-Type", "application/json; charset=latin1"), 415, errs.UnsupportedMediaType, ""},
		{"json suffix type", "POST", "/patients", strings.NewReader(valid), h("Content-Type", "application/jsonx"), 415, errs.UnsupportedMediaType, ""},
		{"limit=0", "GET", "/patients?limit=0", nil, nil, 400, errs.InvalidArgument, "limit"},
		{"limit huge", "GET", "/patients?limit=1000000000", nil, nil, 400, errs.InvalidArgument, "limit"},
		{"limit overflow", "GET", "/patients?limit=99999999999999999999999", nil, nil, 400, errs.InvalidArgument, "limit"},
		{"limit=abc", "GET", "/patients?limit=abc", nil, nil, 400, errs.InvalidArgument, "limit"},
		{"limit negative", "GET", "/patients?limit=-5", nil, nil, 400, errs.InvalidArgument, "limit"},
		{"audit limit 1001", "GET", "/audit?limit=1001", nil, nil, 400, errs.InvalidArgument, "limit"},
		{"audit bad from", "GET", "/audit?from=yesterday", nil, nil, 400, errs.InvalidArgument, "from"},
		{"audit bad to", "GET", "/audit?to=2026-02-30", nil, nil, 400, errs.InvalidArgument, "to"},
		{"audit to before from", "GET", "/audit?from=2026-02-02&to=2026-02-01T00:00:00Z", nil, nil, 400, errs.InvalidArgument, "to"},
		{"garbage If-Match", "PUT", pid, strings.NewReader(valid), withCT("If-Match", `"abc"`), 400, errs.InvalidArgument, "If-Match"},
		{"If-Match zero", "PUT", pid, strings.NewReader(valid), withCT("If-Match", `"0"`), 400, errs.InvalidArgument, "If-Match"},
		{"If-Match list", "DELETE", pid, nil, h("If-Match", `"1", "2"`), 400, errs.InvalidArgument, "If-Match"},
		{"If-Match twice", "DELETE", pid, nil, h("If-Match", `"1"`, "If-Match", `"1"`), 400, errs.InvalidArgument, "If-Match"},
		{"If-Match unquoted weak", "DELETE", pid, nil, h("If-Match", `W/1`), 400, errs.InvalidArgument, "If-Match"},
		{"If-Match sign", "DELETE", pid, nil, h("If-Match", `+1`), 400, errs.InvalidArgument, "If-Match"},
		{"Idempotency-Key too long", "POST", "/patients", strings.NewReader(valid), withCT("Idempotency-Key", strings.Repeat("k", 201)), 400, errs.InvalidArgument, "Idempotency-Key"},
		{"Idempotency-Key not ASCII", "POST", "/patients", strings.NewReader(valid), withCT("Idempotency-Key", "ключ"), 400, errs.InvalidArgument, "Idempotency-Key"},
		{"over-long id", "GET", "/patients/" + strings.Repeat("a", 65), nil, nil, 400, errs.InvalidArgument, "id"},
		{"over-long id history", "GET", "/patients/" + strings.Repeat("a", 65) + "/history", nil, nil, 400, errs.InvalidArgument, "id"},
		{"unknown query param", "GET", "/patients?name=Ada", nil, nil, 400, errs.InvalidArgument, "name"},
		{"repeated param", "GET", "/patients?q=a&q=b", nil, nil, 400, errs.InvalidArgument, "q"},
		{"malformed query", "GET", "/patients?q=%zz", nil, nil, 400, errs.InvalidArgument, ""},
		{"query on get", "GET", pid + "?fields=all", nil, nil, 400, errs.InvalidArgument, "fields"},
		{"query on create", "POST", "/patients?dryRun=1", strings.NewReader(valid), withCT(), 400, errs.InvalidArgument, "dryRun"},
		// What gRPC cannot marshal or PostgreSQL cannot store is refused here, as the caller's.
		{"invalid UTF-8 query value", "GET", "/patients?q=a%ff", nil, nil, 400, errs.InvalidArgument, "q"},
		{"NUL in a query value", "GET", "/patients?email=a%00", nil, nil, 400, errs.InvalidArgument, "email"},
		{"escape in a query value", "GET", "/audit?actor=%1b[2J", nil, nil, 400, errs.InvalidArgument, "actor"},
		{"invalid UTF-8 id", "GET", "/patients/%c0%ae", nil, nil, 400, errs.InvalidArgument, "id"},
		{"NUL in an id", "DELETE", "/patients/%00", nil, nil, 400, errs.InvalidArgument, "id"},
		{"two Content-Types", "POST", "/patients", strings.NewReader(valid), h("Content-Type", "application/json", "Content-Type", "text/plain"), 415, errs.UnsupportedMediaType, ""},
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
