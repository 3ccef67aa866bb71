package grpctransport

import (
	"google.golang.org/grpc"

	"github.com/pms/pms/pkg/analytics"
	analyticsv1 "github.com/pms/pms/proto/pms/analytics/v1"
)

// NewAnalyticsClient returns the analytics endpoint set over conn (for the gateway and
// tests), forwarding the request id, client address and bearer token as the other clients
// do; errors come back as the *errs.Error the server raised. Deadlines, retries and circuit
// breaking are the caller's policy: put them around the set with Set.Wrap.
func NewAnalyticsClient(conn *grpc.ClientConn) analytics.Set {
	c := clientFactory{conn: conn, service: analyticsv1.AnalyticsService_ServiceDesc.ServiceName}
	return analytics.Set{
		GetSummaryEndpoint: c.endpoint(analytics.MethodGetSummary, total(summaryQueryToPB), total(summaryFromPB), &analyticsv1.Summary{}),
	}
}
