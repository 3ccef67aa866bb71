package patient

import (
	"context"
	"strings"

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

// CandidatesPlan is PostgreSQL's plan (EXPLAIN, text) of the duplicate check's candidate
// lookup for a registration of r, for TestCandidatesPlanWithoutStatistics.
func CandidatesPlan(ctx context.Context, s *Store, r CreateRequest) (string, error) {
	var bad errs.Fields
	p := matchDemographics(&bad, r)
	if err := bad.Err(); err != nil {
		return "", err
	}
	query, args, err := s.candidatesQuery(p, "")
	if err != nil {
		return "", err
	}
	var lines []string
	if err := s.db.SelectContext(ctx, &lines, "EXPLAIN "+query, args...); err != nil {
		return "", err
	}
	return strings.Join(lines, "\n"), nil
}

// CountedSearches is how many searches of s's store counted their matches (countMatches),
// for TestDenseSearchUncounted.
func CountedSearches(s Service) int64 { return s.(*service).store.counted.Load() }
