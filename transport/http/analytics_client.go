package httptransport

import (
	"net/http"
	"net/url"

	"github.com/pms/pms/pkg/analytics"
)

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
	}, nil
}
