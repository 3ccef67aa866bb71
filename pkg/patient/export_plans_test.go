package patient

import (
	"context"
	"strings"

	"github.com/pms/pms/pkg/platform/errs"
)

// StatementsOf runs, through s alone (no service, so one connection is enough), the store's
// statements TestIndexedSearchMatchesReference's "statements planned for their values" looks at: each search of qs, the duplicate
// check's candidate lookup and the email check for r, and get by id, each n times.
func StatementsOf(ctx context.Context, s *Store, qs []ListQuery, r CreateRequest, id string, n int) error {
	var bad errs.Fields
	p := matchDemographics(&bad, r)
	if err := bad.Err(); err != nil {
		return err
	}
	for range n {
		for _, q := range qs {
			if _, _, _, _, err := s.list(ctx, q, 0, DefaultLimit); err != nil {
				return err
			}
		}
		if _, err := s.candidates(ctx, s.db, p, ""); err != nil {
			return err
		}
		tx, err := s.db.BeginTxx(ctx, nil)
		if err != nil {
			return err
		}
		_, err = s.checkEmail(ctx, tx, id, r.Email, nil)
		_ = tx.Rollback()
		if err != nil {
			return err
		}
		if _, err := s.get(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// AccessLogPlan is PostgreSQL's plan of the access log's page statement for pid.
func AccessLogPlan(ctx context.Context, s *Store, pid string, before int64, limit int) (string, error) {
	q, args := s.accessLogQuery(pid, before, limit)
	var lines []string
	if err := s.db.SelectContext(ctx, &lines, `EXPLAIN `+q, args...); err != nil {
		return "", err
	}
	return strings.Join(lines, "\n"), nil
}
