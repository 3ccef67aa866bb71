package httptransport

import (
	"bytes"
	"context"
	"encoding/csv"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
)

// searchBody is the body of POST /patients/_search (issue 17 item 6): the filters of GET
// /patients and the page token, in the body so that no patient data travels in a URL, where
// proxies and load balancers log it.
type searchBody struct {
	Q           string `json:"q"`
	Email       string `json:"email"`
	DateOfBirth string `json:"dateOfBirth"`
	Identifier  string `json:"identifier,omitempty"`
	// The demographic filters (pkg/patient/search_filters.go).
	Family          string `json:"family,omitempty"`
	Given           string `json:"given,omitempty"`
	Phone           string `json:"phone,omitempty"`
	Gender          string `json:"gender,omitempty"`
	DateOfBirthFrom string `json:"dateOfBirthFrom,omitempty"`
	DateOfBirthTo   string `json:"dateOfBirthTo,omitempty"`
	Limit           *int   `json:"limit"`
	PageToken       string `json:"pageToken"`
}

// decodeSearchPatients reads POST /patients/_search: a JSON body, no query string.
func decodeSearchPatients(_ context.Context, r *http.Request) (patient.ListQuery, error) {
	if err := noQuery(r); err != nil {
		return patient.ListQuery{}, err
	}
	b, err := DecodeJSON[searchBody](r)
	if err != nil {
		return patient.ListQuery{}, err
	}
	// The same rules as GET's query values: plain text, and a limit, when given, in range
	// (an explicit 0 is not "the default").
	var bad errs.Fields
	for _, f := range []struct{ name, v string }{{"q", b.Q}, {"email", b.Email}, {"dateOfBirth", b.DateOfBirth}, {"identifier", b.Identifier}, {"pageToken", b.PageToken},
		{"family", b.Family}, {"given", b.Given}, {"phone", b.Phone}, {"gender", b.Gender}, {"dateOfBirthFrom", b.DateOfBirthFrom}, {"dateOfBirthTo", b.DateOfBirthTo}} {
		if !plainText(f.v) {
			bad.Add(f.name, plainTextMessage)
		}
	}
	q := patient.ListQuery{Q: b.Q, Email: b.Email, DateOfBirth: b.DateOfBirth, Identifier: b.Identifier, PageToken: b.PageToken,
		Family: b.Family, Given: b.Given, Phone: b.Phone, Gender: b.Gender, BornFrom: b.DateOfBirthFrom, BornTo: b.DateOfBirthTo}
	if b.Limit != nil {
		if *b.Limit < 1 || *b.Limit > patient.MaxLimit {
			bad.Add("limit", "must be between 1 and 500")
		}
		q.Limit = *b.Limit
	}
	return q, bad.Err()
}

// encodeSearchPage writes a POST search's page like GET's (the array, X-Total-Count); the
// Link to the next page carries only the opaque page token, which the client sends in the
// next body with the same filters.
func encodeSearchPage(prefix string) func(context.Context, http.Header, patient.Page) (int, any) {
	return func(_ context.Context, h http.Header, pg patient.Page) (int, any) {
		setTotal(h, pg)
		if pg.NextPageToken != "" {
			h.Set("Link", "<"+prefix+"/patients/_search?"+url.Values{"pageToken": {pg.NextPageToken}}.Encode()+`>; rel="next"`)
		}
		return http.StatusOK, patient.Patients(nonNil(pg.Patients))
	}
}

// decodeAccessLog reads GET /patients/{id}/access-log?limit=&pageToken=.
func decodeAccessLog(_ context.Context, r *http.Request) (patient.AccessLogQuery, error) {
	id, err := pathID(r)
	if err != nil {
		return patient.AccessLogQuery{}, err
	}
	q, err := ParseQuery(r, "limit", "pageToken")
	if err != nil {
		return patient.AccessLogQuery{}, err
	}
	return patient.AccessLogQuery{PatientID: id, Limit: q.Int("limit", 0, 1, patient.MaxLimit), PageToken: q.Get("pageToken")}, q.Err()
}

// accessLogCSVHeader is the header row of the access log as CSV.
var accessLogCSVHeader = []string{"entryId", "at", "actor", "role", "action", "outcome", "position",
	"requestId", "clientAddress", "transport", "emergency"}

// encodeAccessLog writes a page of the access log as a JSON array, or as CSV when the
// client's Accept prefers text/csv, with the next page's Link.
func encodeAccessLog(prefix string) func(context.Context, http.Header, patient.AccessLogPage) (int, any) {
	return func(ctx context.Context, h http.Header, pg patient.AccessLogPage) (int, any) {
		if pg.NextPageToken != "" {
			q := requestQuery(ctx)
			q.Set("pageToken", pg.NextPageToken)
			path := ""
			if u, ok := ctx.Value(requestURLKey).(*url.URL); ok {
				if i := strings.LastIndex(u.EscapedPath(), "/patients/"); i >= 0 {
					path = u.EscapedPath()[i:] // the route as served, under the client's prefix
				}
			}
			h.Set("Link", "<"+prefix+path+"?"+q.Encode()+`>; rel="next"`)
		}
		if !wantsCSV(acceptHeader(ctx)) {
			return http.StatusOK, nonNil(pg.Records)
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		_ = w.Write(accessLogCSVHeader)
		for _, r := range pg.Records {
			_ = w.Write([]string{r.EntryID, r.At.UTC().Format(time.RFC3339Nano), csvCell(r.Actor), r.Role, r.Action,
				r.Outcome, strconv.Itoa(r.Position), csvCell(r.RequestID), csvCell(r.ClientAddress), r.Transport,
				strconv.FormatBool(r.Emergency)})
		}
		w.Flush()
		return http.StatusOK, RawBody{ContentType: "text/csv; charset=utf-8", Data: buf.Bytes()}
	}
}

// csvCell defuses a cell a spreadsheet would run as a formula (CSV injection).
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// wantsCSV reports whether an Accept header asks for text/csv ahead of JSON (the first of
// the two named wins; without either, JSON).
func wantsCSV(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "text/csv":
			return true
		case "application/json", "*/*", "application/*":
			return false
		}
	}
	return false
}

func encodeAccessLogCall(q patient.AccessLogQuery) (call, error) {
	cl, err := patientCall(http.MethodGet, q.PatientID, "/access-log")
	if err != nil {
		return call{}, err
	}
	v := url.Values{}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	setParam(v, "pageToken", q.PageToken)
	cl.query = v
	return cl, nil
}

func decodeAccessLogResponse(resp *http.Response) (patient.AccessLogPage, error) {
	rs, err := decodeJSONResponse[[]patient.AccessRecord](resp)
	if err != nil {
		return patient.AccessLogPage{}, err
	}
	return patient.AccessLogPage{Records: rs, NextPageToken: nextPageToken(resp.Header)}, nil
}

// encodeSearchCall sends a search as POST /patients/_search, its filters in the body.
func encodeSearchCall(q patient.ListQuery) (call, error) {
	return call{method: http.MethodPost, path: "/patients/_search", header: http.Header{},
		body: searchBodyOf(q)}, nil
}

func searchBodyOf(q patient.ListQuery) searchBody {
	b := searchBody{Q: q.Q, Email: q.Email, DateOfBirth: q.DateOfBirth, Identifier: q.Identifier, PageToken: q.PageToken,
		Family: q.Family, Given: q.Given, Phone: q.Phone, Gender: q.Gender, DateOfBirthFrom: q.BornFrom, DateOfBirthTo: q.BornTo}
	if q.Limit != 0 {
		b.Limit = &q.Limit
	}
	return b
}
