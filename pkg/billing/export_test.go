package billing

import (
	"context"
	"strings"
)

// DetailPlans is PostgreSQL's plan of each statement loadDetails runs for the invoices ids:
// the lines', then the payments'.
func DetailPlans(ctx context.Context, s *Store, ids []string) ([]string, error) {
	var plans []string
	for _, r := range []detailRead{lineRead, paymentRead} {
		query, args, err := s.byInvoiceQuery(r, ids)
		if err != nil {
			return nil, err
		}
		var lines []string
		if err := s.db.SelectContext(ctx, &lines, s.db.Rebind(`EXPLAIN `+query), args...); err != nil {
			return nil, err
		}
		plans = append(plans, strings.Join(lines, "\n"))
	}
	return plans, nil
}
