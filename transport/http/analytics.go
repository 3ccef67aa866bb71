package httptransport

import (
	"context"
	"net/http"
	"net/url"

	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/platform/audit"
)

// NewAnalyticsHandler serves the analytics API of API.md ("Analytics") from the endpoint set,
// under o.Prefix (the gateway mounts it under /api/analytics), behind Wrap.
func NewAnalyticsHandler(set analytics.Set, o Options) http.Handler {
	r := NewRouter()
	Handle(r, o, http.MethodGet, "/summary", set.GetSummaryEndpoint, decodeSummaryQuery, encodeOK[analytics.Summary])
	Handle(r, o, http.MethodGet, "/audit/verify", set.VerifyAuditEndpoint, decodeVerifyAudit[analytics.VerifyAuditRequest], encodeOK[audit.Report])
	return Wrap(r, o)
}

// decodeSummaryQuery reads GET /summary?from=&to= (days; the service checks them, so gRPC
// callers get the same answer).
func decodeSummaryQuery(_ context.Context, r *http.Request) (analytics.SummaryQuery, error) {
	q, err := ParseQuery(r, "from", "to")
	if err != nil {
		return analytics.SummaryQuery{}, err
	}
	sq := analytics.SummaryQuery{From: q.Get("from"), To: q.Get("to")}
	if err := analytics.ValidateQuery(sq); err != nil {
		return sq, err
	}
	return sq, q.Err()
}

// NewAnalyticsClient returns the analytics endpoint set speaking HTTP to the analytics API at
// baseURL (e.g. "http://127.0.0.1:4002", or "http://gateway:4004/api/analytics"). The Set
// implements analytics.Service; errors come back as the *errs.Error the server sent.
func NewAnalyticsClient(baseURL string, o ClientOptions) (analytics.Set, error) {
	c, err := newClient(baseURL, o)
	if err != nil {
		return analytics.Set{}, err
	}
	return analytics.Set{
		GetSummaryEndpoint: clientEndpoint(c, func(q analytics.SummaryQuery) (call, error) {
			v := url.Values{}
			setParam(v, "from", q.From)
			setParam(v, "to", q.To)
			return call{method: http.MethodGet, path: "/summary", query: v}, nil
		}, decodeJSONResponse[analytics.Summary]),
		VerifyAuditEndpoint: clientEndpoint(c, verifyCall[analytics.VerifyAuditRequest]("/audit/verify"), decodeJSONResponse[audit.Report]),
	}, nil
}
