package patient

import (
	"context"

	"github.com/pms/pms/pkg/platform/errs"
)

// ScoreCandidates is the duplicate check's lookup and scoring alone (no audit entry), for
// BenchmarkRegistrationMatching: the number of candidates at or above the threshold.
func ScoreCandidates(ctx context.Context, s Service, r CreateRequest) (int, error) {
	svc := s.(*service)
	var bad errs.Fields
	p := matchDemographics(&bad, r)
	if err := bad.Err(); err != nil {
		return 0, err
	}
	cs, err := svc.scoreCandidates(ctx, svc.store.db, p, "", svc.matcher.Threshold())
	return len(cs), err
}
