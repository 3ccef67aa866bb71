package httptransport

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/patient/match"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/transport/wire"
)

// testCandidates is what the stub's Duplicates answers.
var testCandidates = []patient.Candidate{{ID: testID, Score: 0.93, Grade: "probable",
	Reasons: []match.Reason{{Field: "family", Level: "exact", Weight: 5}}, Patient: testPatient}}

func (s *stubService) Duplicates(ctx context.Context, r patient.DuplicatesRequest) (patient.DuplicatesResponse, error) {
	return patient.DuplicatesResponse{Candidates: testCandidates}, s.record(ctx, r)
}

// TestDuplicatesRoute: GET /patients/{id}/duplicates answers the candidates, raw and through
// the client; a bad count is 400 before the service is called.
func TestDuplicatesRoute(t *testing.T) {
	e := newEnv(t, Options{Prefix: "/api"})
	pid := "/api/patients/" + testID
	resp, b := e.do(t, "GET", pid+"/duplicates?count=5", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"score":0.93`) || !strings.Contains(string(b), `"reasons":[{"field":"family"`) {
		t.Fatalf("duplicates: %d %s", resp.StatusCode, b)
	}
	if _, last, _ := e.stub.seen(); !reflect.DeepEqual(last, patient.DuplicatesRequest{ID: testID, Count: 5}) {
		t.Errorf("service got %#v", last)
	}
	calls, _, _ := e.stub.seen()
	for _, q := range []string{"?count=0", "?count=51", "?count=x", "?minScore=1", "?count=1&count=2"} {
		resp, b := e.do(t, "GET", pid+"/duplicates"+q, nil)
		checkError(t, resp, b, 400, errs.InvalidArgument)
	}
	if n, _, _ := e.stub.seen(); n != calls {
		t.Errorf("bad requests reached the service: %d calls, want %d", n, calls)
	}
	got, err := e.client.Duplicates(context.Background(), patient.DuplicatesRequest{ID: testID, Count: 3})
	if err != nil || len(got.Candidates) != 1 || got.Candidates[0].Score != 0.93 || got.Candidates[0].Patient.Name != "Ada Lovelace" {
		t.Fatalf("client: %+v %v", got, err)
	}
}

// TestCreateDuplicateCheck: Prefer: duplicate-check=strict reaches the service, a malformed
// Prefer is 400, the 409 possible_duplicate carries its candidates to the raw caller and the
// client, and X-Possible-Duplicates is written and read back.
func TestCreateDuplicateCheck(t *testing.T) {
	e := newEnv(t, Options{})
	body := `{"name":"Ada Lovelace","email":"ada@example.org","address":"1 Main St","dateOfBirth":"1990-12-10"}`
	resp, b := e.do(t, "POST", "/patients", strings.NewReader(body), append(jsonCT, "Prefer", "return=minimal, duplicate-check=strict", wire.HeaderConfirmNotDuplicate, testID)...)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	if _, last, _ := e.stub.seen(); last.(patient.CreateRequest).DuplicateCheck != "strict" || last.(patient.CreateRequest).ConfirmNotDuplicate[0] != testID {
		t.Errorf("service got %#v", last)
	}
	calls, _, _ := e.stub.seen()
	for _, prefer := range []string{"duplicate-check=lenient", "duplicate-check", "duplicate-check=strict\u00e9", strings.Repeat("a=b,", 300)} {
		resp, b := e.do(t, "POST", "/patients", strings.NewReader(body), append(jsonCT, "Prefer", prefer)...)
		checkError(t, resp, b, 400, errs.InvalidArgument)
	}
	if n, _, _ := e.stub.seen(); n != calls {
		t.Errorf("bad requests reached the service: %d calls, want %d", n, calls)
	}

	e.stub.patient.PossibleDuplicates = 2
	resp, _ = e.do(t, "POST", "/patients", strings.NewReader(body), jsonCT...)
	if resp.StatusCode != 201 || resp.Header.Get("X-Possible-Duplicates") != "2" {
		t.Fatalf("warn: %d %q", resp.StatusCode, resp.Header.Get("X-Possible-Duplicates"))
	}
	p, err := e.client.Create(context.Background(), patient.CreateRequest{Name: "Ada", DuplicateCheck: "strict"})
	if err != nil || p.PossibleDuplicates != 2 {
		t.Fatalf("client create: %d %v", p.PossibleDuplicates, err)
	}

	cs, _ := json.Marshal(testCandidates)
	e.stub.err = &errs.Error{Kind: errs.PossibleDuplicate, Message: "1 registered patient may be this person", Candidates: cs}
	resp, b = e.do(t, "POST", "/patients", strings.NewReader(body), jsonCT...)
	eb := checkError(t, resp, b, 409, errs.PossibleDuplicate)
	if !strings.Contains(string(eb.Candidates), `"id":"`+testID+`"`) {
		t.Fatalf("409 body: %s", b)
	}
	_, err = e.client.Create(context.Background(), patient.CreateRequest{Name: "Ada"})
	var pe *errs.Error
	if !errors.As(err, &pe) || pe.Kind != errs.PossibleDuplicate || !errors.Is(err, patient.ErrPossibleDuplicate) {
		t.Fatalf("client: %v", err)
	}
	var back []patient.Candidate
	if err := json.Unmarshal(pe.Candidates, &back); err != nil || len(back) != 1 || back[0].ID != testID {
		t.Fatalf("candidates through the client: %s %v", pe.Candidates, err)
	}
}
