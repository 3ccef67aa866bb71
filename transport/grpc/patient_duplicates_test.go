package grpctransport

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/patient/match"
	"github.com/pms/pms/pkg/platform/errs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func (s *stubService) Duplicates(ctx context.Context, req patient.DuplicatesRequest) (patient.DuplicatesResponse, error) {
	return stubResult[patient.DuplicatesResponse](s.do(ctx, patient.MethodDuplicates, req))
}

// TestDuplicatesRoundTrip: FindDuplicates by id and by demographics carries the request and
// the scored candidates through the real client, wire and server; a create carries
// duplicate_check and its possible_duplicates count; a possible_duplicate refusal arrives as
// AlreadyExists with its kind and its candidates.
func TestDuplicatesRoundTrip(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	answer := patient.DuplicatesResponse{Candidates: []patient.Candidate{{ID: alice.ID, Score: 0.97, Grade: "certain",
		Reasons: []match.Reason{{Field: "dob", Level: "exact", Weight: 8}}, Patient: alice}}}
	for _, req := range []patient.DuplicatesRequest{
		{ID: alice.ID, Count: 5},
		{Patient: &patient.CreateRequest{Family: "Liddell", Given: []string{"Alice"}, DateOfBirth: "1852-05-04"}, Count: 3, OnlyCertain: true, MinScore: 0.2},
	} {
		h.stub.setFn(func(string, any) (any, error) { return answer, nil })
		got, err := h.client.Duplicates(testContext(t), req)
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		c := h.stub.last(t)
		if c.method != patient.MethodDuplicates || !reflect.DeepEqual(c.req, req) {
			t.Errorf("service got %s %#v, want %#v", c.method, c.req, req)
		}
		if !reflect.DeepEqual(got, answer) {
			t.Errorf("caller got\n%#v\nwant\n%#v", got, answer)
		}
	}

	created := alice
	created.PossibleDuplicates = 2
	h.stub.setFn(func(string, any) (any, error) { return created, nil })
	req := patient.CreateRequest{Name: "Alice Liddell", DuplicateCheck: patient.DuplicateCheckStrict, ConfirmNotDuplicate: []string{alice.ID}}
	got, err := h.client.Create(testContext(t), req)
	if err != nil || got.PossibleDuplicates != 2 {
		t.Fatalf("create: %+v %v", got, err)
	}
	if c := h.stub.last(t); c.req.(patient.CreateRequest).DuplicateCheck != "strict" || c.req.(patient.CreateRequest).ConfirmNotDuplicate[0] != alice.ID {
		t.Errorf("service got %#v", c.req)
	}

	cs, _ := json.Marshal(answer.Candidates)
	h.stub.setFn(func(string, any) (any, error) {
		return nil, &errs.Error{Kind: errs.PossibleDuplicate, Message: "1 registered patient may be this person", Candidates: cs}
	})
	_, err = h.client.Create(testContext(t), req)
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.PossibleDuplicate || !errors.Is(err, patient.ErrPossibleDuplicate) || string(e.Candidates) != string(cs) {
		t.Fatalf("refusal: %#v", err)
	}
	if st, _ := status.FromError(errors.Unwrap(err)); st.Code() != codes.AlreadyExists {
		t.Errorf("code %v, want AlreadyExists", st.Code())
	}
}
