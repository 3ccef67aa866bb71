package httptransport

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
)

// testGrant is what the stub's BreakGlass answers (with the request's patient and reason).
var testGrant = patient.Grant{ID: "g-1", PatientID: testID, UserID: "doc-1", Role: "clinician", Reason: "unconscious in A&E",
	RequestID: "r-1", CreatedAt: testTime, ExpiresAt: testTime.Add(time.Hour)}

func (s *stubService) SetConfidentiality(ctx context.Context, r patient.ConfidentialityRequest) (patient.Patient, error) {
	p := s.patient
	p.Confidentiality = r.Confidentiality
	return p, s.record(ctx, r)
}

func (s *stubService) BreakGlass(ctx context.Context, r patient.BreakGlassRequest) (patient.Grant, error) {
	g := testGrant
	g.PatientID, g.Reason = r.ID, r.Reason
	return g, s.record(ctx, r)
}

func (s *stubService) BreakGlassGrants(ctx context.Context, q patient.GrantQuery) ([]patient.GrantReview, error) {
	return []patient.GrantReview{{Grant: testGrant, Reads: []patient.AuditEntry{{ID: "a-1", At: testTime, Actor: "doc-1",
		Role: "clinician", Action: "read", PatientID: testID, Outcome: "success", RequestID: "r-2", ClientAddress: "10.0.0.1"}}}}, s.record(ctx, q)
}

// testErasure is what the stub's Erase answers (with the request's patient and reason).
var testErasure = patient.Erasure{PatientID: testID, MRN: "MRN-00000007", ErasedAt: testTime, ErasedBy: "admin-1", Role: "admin",
	Reason: "GDPR Art. 17 request", RequestID: "r-9"}

func (s *stubService) Erase(ctx context.Context, r patient.EraseRequest) (patient.Erasure, error) {
	e := testErasure
	e.PatientID, e.Reason = r.ID, r.Reason
	return e, s.record(ctx, r)
}

// TestEraseRoute: POST /patients/{id}/erase answers 200 with the erase record, the service
// receives the id and reason, and bad bodies are 400 before the service is called.
func TestEraseRoute(t *testing.T) {
	e := newEnv(t, Options{Prefix: "/api"})
	pid := "/api/patients/" + testID
	resp, b := e.do(t, "POST", pid+"/erase", strings.NewReader(`{"reason":"GDPR Art. 17 request"}`), jsonCT...)
	if resp.StatusCode != 200 || decodeBody[patient.Erasure](t, b) != testErasure {
		t.Fatalf("erase: %d %s", resp.StatusCode, b)
	}
	if _, last, _ := e.stub.seen(); last != (patient.EraseRequest{ID: testID, Reason: "GDPR Art. 17 request"}) {
		t.Errorf("service got %#v", last)
	}
	calls, _, _ := e.stub.seen()
	for _, body := range []string{`{"reason":5}`, `{"reason":"x","name":"Ada"}`, `[]`, `{"reason":"GDPR Art. 17 request"`} {
		resp, b := e.do(t, "POST", pid+"/erase", strings.NewReader(body), jsonCT...)
		checkError(t, resp, b, 400, errs.InvalidArgument)
	}
	resp, b = e.do(t, "POST", pid+"/erase?reason=x", strings.NewReader(`{"reason":"GDPR Art. 17 request"}`), jsonCT...)
	checkError(t, resp, b, 400, errs.InvalidArgument)
	if n, _, _ := e.stub.seen(); n != calls {
		t.Errorf("bad requests reached the service: %d calls, want %d", n, calls)
	}
	got, err := e.client.Erase(context.Background(), patient.EraseRequest{ID: testID, Reason: "GDPR Art. 17 request"})
	if err != nil || got != testErasure {
		t.Fatalf("client: %+v %v", got, err)
	}
}

// TestBreakGlassRoutes: the three routes, raw and through the client, with and without the
// gateway's /api prefix; the contract's status codes (201 for a grant), bodies and the
// requests the service receives; bad bodies are 400 before the service is called; the
// service's refusal of a restricted record is 403 naming break-glass.
func TestBreakGlassRoutes(t *testing.T) {
	for _, prefix := range []string{"", "/api"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			e := newEnv(t, Options{Prefix: prefix})
			pid := prefix + "/patients/" + testID

			resp, b := e.do(t, "PUT", pid+"/confidentiality", strings.NewReader(`{"confidentiality":"restricted"}`), jsonCT...)
			if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"3"` || decodeBody[patient.Patient](t, b).Confidentiality != "restricted" {
				t.Fatalf("set confidentiality: %d %s", resp.StatusCode, b)
			}
			if _, last, _ := e.stub.seen(); last != (patient.ConfidentialityRequest{ID: testID, Confidentiality: "restricted"}) {
				t.Errorf("service got %#v", last)
			}
			resp, b = e.do(t, "POST", pid+"/break-glass", strings.NewReader(`{"reason":"unconscious in A&E"}`), jsonCT...)
			if resp.StatusCode != 201 || decodeBody[patient.Grant](t, b) != testGrant {
				t.Fatalf("break-glass: %d %s", resp.StatusCode, b)
			}
			resp, b = e.do(t, "GET", prefix+"/audit/break-glass?patientId="+testID+"&actor=doc-1&from=2026-03-01&limit=5", nil)
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"reads":[{"id":"a-1"`) {
				t.Fatalf("review: %d %s", resp.StatusCode, b)
			}
			_, last, _ := e.stub.seen()
			if want := (patient.GrantQuery{PatientID: testID, UserID: "doc-1", From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Limit: 5}); last != want {
				t.Errorf("service got %#v, want %#v", last, want)
			}

			calls, _, _ := e.stub.seen()
			for _, c := range []struct{ method, path, body string }{
				{"POST", pid + "/break-glass", `{}`},                             // no reason: the service says 400
				{"POST", pid + "/break-glass", `{"reason":5}`},                   // wrong type
				{"POST", pid + "/break-glass", `{"reason":"x","until":"never"}`}, // unknown field
				{"PUT", pid + "/confidentiality", `{"confidentiality":null,"x":1}`},
				{"GET", prefix + "/audit/break-glass?limit=0", ""},
				{"GET", prefix + "/audit/break-glass?from=yesterday", ""},
				{"GET", prefix + "/audit/break-glass?nope=1", ""},
			} {
				var body *strings.Reader
				if c.body != "" {
					body = strings.NewReader(c.body)
				}
				var resp *http.Response
				if body != nil {
					resp, b = e.do(t, c.method, c.path, body, jsonCT...)
				} else {
					resp, b = e.do(t, c.method, c.path, nil)
				}
				if c.body == `{}` { // reaches the service, whose answer the stub does not check
					continue
				}
				checkError(t, resp, b, 400, errs.InvalidArgument)
			}
			if n, _, _ := e.stub.seen(); n != calls+1 {
				t.Errorf("bad requests reached the service: %d calls, want %d", n, calls+1)
			}
			e.stub.mu.Lock()
			e.stub.err = patient.ErrRestricted
			e.stub.mu.Unlock()
			resp, b = e.do(t, "GET", pid, nil)
			if eb := checkError(t, resp, b, 403, errs.PermissionDenied); !strings.Contains(eb.Message, "break-glass") {
				t.Errorf("403 without naming break-glass: %s", b)
			}
		})
	}
}

// TestBreakGlassClient: the HTTP client's break-glass calls round-trip.
func TestBreakGlassClient(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	p, err := e.client.SetConfidentiality(ctx, patient.ConfidentialityRequest{ID: testID, Confidentiality: "restricted"})
	if err != nil || p.Confidentiality != "restricted" {
		t.Fatalf("set: %+v %v", p, err)
	}
	g, err := e.client.BreakGlass(ctx, patient.BreakGlassRequest{ID: testID, Reason: "unconscious in A&E"})
	if err != nil || g != testGrant {
		t.Fatalf("break-glass: %+v %v", g, err)
	}
	from := time.Date(2026, 3, 1, 1, 2, 3, 4000, time.UTC)
	r, err := e.client.BreakGlassGrants(ctx, patient.GrantQuery{PatientID: testID, UserID: "doc-1", From: from, Limit: 7})
	if err != nil || len(r) != 1 || r[0].Grant != testGrant || len(r[0].Reads) != 1 {
		t.Fatalf("review: %+v %v", r, err)
	}
	if _, last, _ := e.stub.seen(); !reflect.DeepEqual(last, patient.GrantQuery{PatientID: testID, UserID: "doc-1", From: from, Limit: 7}) {
		t.Errorf("service got %#v", last)
	}
	e.stub.mu.Lock()
	e.stub.err = patient.ErrRestricted
	e.stub.mu.Unlock()
	if _, err := e.client.Get(ctx, testID); errs.KindOf(err) != errs.PermissionDenied || !strings.Contains(err.Error(), "break-glass") {
		t.Errorf("restricted over the client: %v", err)
	}
}

// init adds the break-glass decoders to the patient decoders FuzzDecoders drives.
func init() {
	patientCases = append(patientCases,
		caseOf("confidentiality", "PUT", decodeConfidentiality, func(t *testing.T, in fuzzInput, r patient.ConfidentialityRequest) {
			checkNoQuery(t, in)
			checkJSONBody(t, in)
			checkID(t, in, r.ID)
		}, func(t *testing.T, in fuzzInput, r patient.ConfidentialityRequest) fuzzInput {
			return withBody(t, in, confidentialityBody{Confidentiality: r.Confidentiality})
		}),
		caseOf("break-glass", "POST", decodeBreakGlass, func(t *testing.T, in fuzzInput, r patient.BreakGlassRequest) {
			checkNoQuery(t, in)
			checkJSONBody(t, in)
			checkID(t, in, r.ID)
		}, func(t *testing.T, in fuzzInput, r patient.BreakGlassRequest) fuzzInput {
			return withBody(t, in, reasonBody{Reason: r.Reason})
		}),
		caseOf("break-glass-grants", "GET", decodeGrantQuery, func(t *testing.T, in fuzzInput, q patient.GrantQuery) {
			v := checkQuery(t, in, []string{"patientId", "actor", "from", "to", "limit"},
				map[string]string{"patientId": q.PatientID, "actor": q.UserID})
			checkLimit(t, v, q.Limit, patient.MaxAuditLimit)
			checkRange(t, v, q.From, q.To)
		}, nil),
	)
}
