package httptransport

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/audit"
)

// decodeAuditQuery returns the decoder of a service's audit-log read,
// GET <path>?<subject>=&actor=&from=&to=&limit=, the contract's query for every audit log
// (subject names the id parameter: subjectId for billing).
func decodeAuditQuery(subject string) func(context.Context, *http.Request) (audit.Query, error) {
	return func(_ context.Context, r *http.Request) (audit.Query, error) {
		q, err := ParseQuery(r, subject, "actor", "from", "to", "limit")
		if err != nil {
			return audit.Query{}, err
		}
		aq := audit.Query{SubjectID: q.Get(subject), Actor: q.Get("actor"), From: q.Instant("from", false),
			To: q.Instant("to", true), Limit: q.Int("limit", 0, 1, audit.MaxListLimit)}
		if !aq.From.IsZero() && !aq.To.IsZero() && aq.To.Before(aq.From) {
			q.Fail("to", "must not be before from")
		}
		return aq, q.Err()
	}
}

// auditCall is the client side of decodeAuditQuery: GET path with q's parameters.
func auditCall(path, subject string) func(q audit.Query) (call, error) {
	return func(q audit.Query) (call, error) {
		v := url.Values{}
		setParam(v, subject, q.SubjectID)
		setParam(v, "actor", q.Actor)
		if !q.From.IsZero() {
			v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
		}
		if !q.To.IsZero() {
			v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
		}
		if q.Limit != 0 {
			v.Set("limit", strconv.Itoa(q.Limit))
		}
		return call{method: http.MethodGet, path: path, query: v}, nil
	}
}

// verifyRequest is the shape of every service's VerifyAuditRequest.
type verifyRequest interface{ ~struct{ AgainstTopic bool } }

// decodeVerifyAudit reads GET /audit/verify?againstTopic=, a service's audit-chain
// verification (the verdict of `pms audit verify [--against-topic]`, docs/audit.md): its one
// parameter is "true" or "false" (absent: false).
func decodeVerifyAudit[Req verifyRequest](_ context.Context, r *http.Request) (Req, error) {
	q, err := ParseQuery(r, "againstTopic")
	if err != nil {
		return Req{}, err
	}
	var against bool
	switch v := q.Get("againstTopic"); v {
	case "", "false":
	case "true":
		against = true
	default:
		q.Fail("againstTopic", "must be true or false")
	}
	return Req(struct{ AgainstTopic bool }{against}), q.Err()
}

// verifyCall is the client side of decodeVerifyAudit: GET path, with againstTopic=true when
// asked.
func verifyCall[Req verifyRequest](path string) func(Req) (call, error) {
	return func(r Req) (call, error) {
		c := call{method: http.MethodGet, path: path}
		if struct{ AgainstTopic bool }(r).AgainstTopic {
			c.query = url.Values{"againstTopic": {"true"}}
		}
		return c, nil
	}
}

// NewVerifyAuditHandler serves GET /audit/verify under o.Prefix from verify, an endpoint taking
// Req (its one parameter, againstTopic) and answering an audit.Report: what a component without
// an endpoint set of its own (the gateway, for its own chain) serves, as the services do.
func NewVerifyAuditHandler[Req verifyRequest](verify endpoint.Endpoint, o Options) http.Handler {
	r := NewRouter()
	Handle(r, o, http.MethodGet, "/audit/verify", verify, decodeVerifyAudit[Req], encodeOK[audit.Report])
	return Wrap(r, o)
}
