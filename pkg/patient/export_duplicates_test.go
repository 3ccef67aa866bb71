package patient

import (
	"context"
	"fmt"
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

// CountedPagePlan is the plan of the first page's lookup of a search q that counts its
// matches (list: countMatches, then pageBound), for TestCountedPagePlanWithoutStatistics.
func CountedPagePlan(ctx context.Context, s *Store, q ListQuery) (string, error) {
	cond, args := s.searchCondition(q)
	total, found, err := s.countMatches(ctx, s.db, cond, args, 0, countedPositions(q.Limit))
	if err != nil {
		return "", err
	}
	from, fromArgs, bound, boundArgs, order, _ := s.pageBound(found, total, 0, q.Limit)
	if from != lookupFrom {
		return "", fmt.Errorf("the page of %d matches (estimated %v) is not looked up: from %q", total.N, total.Estimated, from)
	}
	pageArgs := append(append(append(append([]any{}, fromArgs...), args...), boundArgs...), int64(0), q.Limit+1)
	var lines []string
	if err := s.db.SelectContext(ctx, &lines, "EXPLAIN "+s.pageQuery(from, cond+bound, order), pageArgs...); err != nil {
		return "", err
	}
	return strings.Join(lines, "\n"), nil
}
