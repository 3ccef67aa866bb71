package httptransport

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
)

// TestPatientSearchByPost: POST /patients/_search takes the filters and the page token in the
// body, answers like GET (array, X-Total-Count), puts only the page token in the Link, and
// refuses a query string; the client searches with it.
func TestPatientSearchByPost(t *testing.T) {
	for _, prefix := range []string{"", "/api"} {
		e := newEnv(t, Options{Prefix: prefix})
		e.stub.page = patient.Page{Patients: []patient.Patient{testPatient}, Total: 7, NextPageToken: "tok2"}
		resp, b := e.do(t, "POST", prefix+"/patients/_search",
			strings.NewReader(`{"q":"Ada","email":"ada@example.org","dateOfBirth":"1915-12-10","limit":1,"pageToken":"tok1",`+
				`"family":"Love","given":"Ada","phone":"+44 20","gender":"female","dateOfBirthFrom":"1900-01-01","dateOfBirthTo":"1920-12-31"}`), jsonCT...)
		if resp.StatusCode != 200 || resp.Header.Get("X-Total-Count") != "7" ||
			resp.Header.Get("Link") != "<"+prefix+`/patients/_search?pageToken=tok2>; rel="next"` {
			t.Fatalf("search: %d %v %s", resp.StatusCode, resp.Header, b)
		}
		if got := decodeBody[[]patient.Patient](t, b); len(got) != 1 || !reflect.DeepEqual(got[0], testPatient) {
			t.Fatalf("body %s", b)
		}
		_, last, _ := e.stub.seen()
		want := patient.ListQuery{Q: "Ada", Email: "ada@example.org", DateOfBirth: "1915-12-10", Limit: 1, PageToken: "tok1",
			Family: "Love", Given: "Ada", Phone: "+44 20", Gender: "female", BornFrom: "1900-01-01", BornTo: "1920-12-31"}
		if last != want {
			t.Fatalf("query = %+v", last)
		}
		resp, b = e.do(t, "POST", prefix+"/patients/_search?q=Ada", strings.NewReader(`{}`), jsonCT...)
		checkError(t, resp, b, 400, errs.InvalidArgument)
		resp, b = e.do(t, "POST", prefix+"/patients/_search", strings.NewReader(`{"q":1}`), jsonCT...)
		checkError(t, resp, b, 400, errs.InvalidArgument)
		for _, bad := range []string{`{"nope":1}`, `{"limit":0}`, `{"limit":501}`, `{"q":"\u0007"}`, `{"pageToken":"\u0000"}`} {
			resp, b = e.do(t, "POST", prefix+"/patients/_search", strings.NewReader(bad), jsonCT...)
			checkError(t, resp, b, 400, errs.InvalidArgument)
		}

		pg, err := e.client.List(t.Context(), patient.ListQuery{Q: "Ada", PageToken: "tok1"})
		if err != nil || pg.NextPageToken != "tok2" || pg.Total != 7 || len(pg.Patients) != 1 {
			t.Fatalf("client search = %+v, %v", pg, err)
		}
		if _, last, _ := e.stub.seen(); last != (patient.ListQuery{Q: "Ada", PageToken: "tok1"}) {
			t.Fatalf("client query = %+v", last)
		}
	}
}

// TestPatientAccessLogRoute: GET /patients/{id}/access-log as JSON and, with Accept:
// text/csv, as CSV; paged by Link; bad parameters are 400.
func TestPatientAccessLogRoute(t *testing.T) {
	e := newEnv(t, Options{Prefix: "/api"})
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e.stub.accessLog = patient.AccessLogPage{Records: []patient.AccessRecord{{EntryID: "e1", At: at, Actor: "=cmd", Role: "clinician",
		Action: "search", Outcome: "success", Position: 3, RequestID: "r1", ClientAddress: "10.0.0.1", Transport: "http"}}, NextPageToken: "n2"}
	resp, b := e.do(t, "GET", "/api/patients/"+testID+"/access-log?limit=1", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Link") != "</api/patients/"+testID+`/access-log?limit=1&pageToken=n2>; rel="next"` {
		t.Fatalf("json: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	if got := decodeBody[[]patient.AccessRecord](t, b); len(got) != 1 || got[0] != e.stub.accessLog.Records[0] {
		t.Fatalf("body %s", b)
	}
	resp, b = e.do(t, "GET", "/api/patients/"+testID+"/access-log", nil, "Accept", "text/csv")
	want := "entryId,at,actor,role,action,outcome,position,requestId,clientAddress,transport,emergency\n" +
		"e1,2026-01-02T03:04:05Z,'=cmd,clinician,search,success,3,r1,10.0.0.1,http,false\n"
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || string(b) != want {
		t.Fatalf("csv: %d %v %q", resp.StatusCode, resp.Header, b)
	}
	for _, bad := range []string{"?limit=0", "?limit=x", "?other=1", "?pageToken=a&pageToken=b"} {
		resp, b = e.do(t, "GET", "/api/patients/"+testID+"/access-log"+bad, nil)
		checkError(t, resp, b, 400, errs.InvalidArgument)
	}
	pg, err := e.client.AccessLog(t.Context(), patient.AccessLogQuery{PatientID: testID, Limit: 1, PageToken: "n1"})
	if err != nil || pg.NextPageToken != "n2" || len(pg.Records) != 1 {
		t.Fatalf("client = %+v, %v", pg, err)
	}
	if _, last, _ := e.stub.seen(); last != (patient.AccessLogQuery{PatientID: testID, Limit: 1, PageToken: "n1"}) {
		t.Fatalf("client query = %+v", last)
	}
}
