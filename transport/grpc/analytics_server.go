package grpctransport

import (
	"context"

	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"google.golang.org/grpc"

	"github.com/pms/pms/pkg/analytics"
	analyticsv1 "github.com/pms/pms/proto/pms/analytics/v1"
)

// RegisterAnalyticsServer serves the analytics endpoint set on s (a server from NewServer) as
// pms.analytics.v1.AnalyticsService.
func RegisterAnalyticsServer(s *grpc.Server, set analytics.Set) {
	analyticsv1.RegisterAnalyticsServiceServer(s, &analyticsServer{
		getSummary: kitgrpc.NewServer(set.GetSummaryEndpoint, total(summaryQueryFromPB), total(summaryToPB)),
	})
}

// analyticsServer binds the go-kit handler of each method of AnalyticsService.
type analyticsServer struct {
	analyticsv1.UnimplementedAnalyticsServiceServer
	getSummary kitgrpc.Handler
}

// GetSummary implements analyticsv1.AnalyticsServiceServer.
func (s *analyticsServer) GetSummary(ctx context.Context, r *analyticsv1.GetSummaryRequest) (*analyticsv1.Summary, error) {
	return serve[*analyticsv1.Summary](ctx, s.getSummary, r)
}
