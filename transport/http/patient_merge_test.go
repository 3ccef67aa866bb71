package httptransport

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
)

// testMerge is what the stub's Merge and Unmerge answer (with the request's ids and reason).
var testMerge = patient.MergeRecord{ID: "m-1", SurvivorID: testID, DuplicateID: "0b5d2f1e-6a3c-4e8f-9d7a-1c2b3a4d5e6f",
	Reason: "same person, registered twice", MergedAt: testTime, MergedBy: "doc-1", Role: "clinician", RequestID: "r-1"}

func (s *stubService) Merge(ctx context.Context, r patient.MergeRequest) (patient.MergeRecord, error) {
	m := testMerge
	m.SurvivorID, m.DuplicateID, m.Reason = r.SurvivorID, r.DuplicateID, r.Reason
	return m, s.record(ctx, r)
}

func (s *stubService) Unmerge(ctx context.Context, r patient.UnmergeRequest) (patient.MergeRecord, error) {
	m := testMerge
	at := testTime.Add(time.Hour)
	m.DuplicateID, m.UnmergedAt, m.UnmergedBy, m.UnmergeReason = r.ID, &at, "doc-1", r.Reason
	return m, s.record(ctx, r)
}

// TestMergeRoutes: POST /patients/{id}/merge and /unmerge answer 200 with the merge record,
// raw and through the client, with and without the gateway's /api prefix; bad bodies are 400
// before the service is called; a merged record's GET answers 308 to its survivor under the
// caller's prefix, with ids only in the body; a merged conflict keeps its survivor through the
// client.
func TestMergeRoutes(t *testing.T) {
	for _, prefix := range []string{"", "/api"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			e := newEnv(t, Options{Prefix: prefix})
			pid := prefix + "/patients/" + testID
			body := `{"duplicateId":"` + testMerge.DuplicateID + `","reason":"same person, registered twice"}`
			resp, b := e.do(t, "POST", pid+"/merge", strings.NewReader(body), jsonCT...)
			if resp.StatusCode != 200 || decodeBody[patient.MergeRecord](t, b) != testMerge {
				t.Fatalf("merge: %d %s", resp.StatusCode, b)
			}
			if _, last, _ := e.stub.seen(); last != (patient.MergeRequest{SurvivorID: testID, DuplicateID: testMerge.DuplicateID, Reason: testMerge.Reason}) {
				t.Errorf("service got %#v", last)
			}
			resp, b = e.do(t, "POST", pid+"/unmerge", strings.NewReader(`{"reason":"not the same person after all"}`), jsonCT...)
			if resp.StatusCode != 200 || decodeBody[patient.MergeRecord](t, b).UnmergeReason != "not the same person after all" {
				t.Fatalf("unmerge: %d %s", resp.StatusCode, b)
			}
			calls, _, _ := e.stub.seen()
			for _, c := range []struct{ path, body string }{
				{pid + "/merge", `{"duplicateId":5,"reason":"same person twice"}`},
				{pid + "/merge", `{"duplicateId":"x","reason":"same person twice","force":true}`},
				{pid + "/merge", `[]`},
				{pid + "/merge?x=1", body},
				{pid + "/unmerge", `{"reason":["x"]}`},
				{pid + "/unmerge", `{"reason":"same person twice"`},
			} {
				resp, b := e.do(t, "POST", c.path, strings.NewReader(c.body), jsonCT...)
				checkError(t, resp, b, 400, errs.InvalidArgument)
			}
			if n, _, _ := e.stub.seen(); n != calls {
				t.Errorf("bad requests reached the service: %d calls, want %d", n, calls)
			}
			got, err := e.client.Merge(context.Background(), patient.MergeRequest{SurvivorID: testID, DuplicateID: testMerge.DuplicateID, Reason: testMerge.Reason})
			if err != nil || got != testMerge {
				t.Fatalf("client merge: %+v %v", got, err)
			}

			// The GET of a merged record: 308 to the survivor, under the prefix.
			merged := testPatient
			merged.ID, merged.MergedInto = testMerge.DuplicateID, testID
			e.stub.mu.Lock()
			e.stub.patient = merged
			e.stub.mu.Unlock()
			req, _ := http.NewRequest("GET", e.srv.URL+prefix+"/patients/"+merged.ID, nil)
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err = noFollow.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var red map[string]string
			_ = json.Unmarshal(raw, &red)
			if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != pid ||
				red["id"] != merged.ID || red["mergedInto"] != testID || len(red) != 2 || resp.Header.Get("ETag") != "" {
				t.Fatalf("GET merged: %d Location %q ETag %q %s", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("ETag"), raw)
			}
			if strings.Contains(string(raw), merged.Name) {
				t.Errorf("the redirect shows the merged record's data: %s", raw)
			}

			// A write to it: the service's conflict keeps the survivor through the client.
			e.stub.mu.Lock()
			e.stub.err = &errs.Error{Kind: errs.Conflict, Message: "merged", Fields: map[string]string{patient.MergedField: testID}}
			e.stub.mu.Unlock()
			_, err = e.client.Update(context.Background(), patient.UpdateRequest{ID: merged.ID, Name: "x"})
			if s, ok := patient.MergedInto(err); !ok || s != testID {
				t.Errorf("client update of a merged record: %v", err)
			}
		})
	}
}
