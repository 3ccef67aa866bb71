package gateway

import (
	"net/http"
	"sync/atomic"

	"github.com/pms/pms/pkg/platform/admit"
	"github.com/pms/pms/pkg/platform/errs"
	httptransport "github.com/pms/pms/transport/http"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxHTTPInFlight is Config.MaxHTTPInFlight's default: room for every upstream's
// admission limit (admit.DefaultLimit) to fill and some to wait, yet far fewer requests than
// it takes to saturate the gateway's own CPU on a small machine.
const DefaultMaxHTTPInFlight = 512

// front is the gateway's first refusal (issue 20 item 5): at most limit HTTP requests in
// flight in the whole gateway; one more is answered 503 with Retry-After at once, before
// anything else runs (CORS, the token check, the body, the per-upstream admission). Per-
// upstream admission protects the upstreams; this protects the gateway itself, whose token
// checks and JSON would otherwise saturate its CPU under an overload and make even the
// refusals slow. A shed request is not audited: overload is not an access decision, and
// writing an entry per refusal would feed the overload.
type front struct {
	next     http.Handler
	limit    int64
	inFlight atomic.Int64
	shed     prometheus.Counter
}

func newFront(next http.Handler, limit int, reg prometheus.Registerer) http.Handler {
	if limit < 0 {
		return next
	}
	if limit == 0 {
		limit = DefaultMaxHTTPInFlight
	}
	f := &front{next: next, limit: int64(limit), shed: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pms_gateway_front_shed_total",
		Help: "HTTP requests refused (503, Retry-After) on arrival because --gateway-max-http-in-flight were in flight.",
	})}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pms_gateway_front_in_flight",
		Help: "HTTP requests in flight in the gateway.",
	}, func() float64 { return float64(f.inFlight.Load()) })
	if reg != nil {
		reg.MustRegister(f.shed, inFlight)
	}
	return f
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.inFlight.Add(1) > f.limit {
		f.inFlight.Add(-1)
		f.shed.Inc()
		e := errs.New(errs.Unavailable, "the gateway is busy: try again shortly")
		e.RetryAfter = admit.RetryAfter
		w.Header().Set("Connection", "close") // let a load balancer spread the retry elsewhere
		httptransport.EncodeError(r.Context(), e, w)
		return
	}
	defer f.inFlight.Add(-1)
	f.next.ServeHTTP(w, r)
}
