package idempotency

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/pms/pms/pkg/platform/db"
)

// DefaultRetention is how long stored command replies and idempotency records are kept
// (issue 17): long enough for any client's retries, short enough that a stored answer (a
// reply body may carry a patient's record) does not outlive its use. A repeat after it is
// a new request.
const DefaultRetention = 7 * 24 * time.Hour

// RepliesTable is the table Replies keeps command replies in (every service's outbox set).
const RepliesTable = "command_replies"

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Prune deletes the rows of tables (each with a created_at column) created before cutoff and
// returns how many went. Names are spliced into SQL, so anything but a plain identifier is
// refused.
func Prune(ctx context.Context, d *db.DB, cutoff time.Time, tables ...string) (int64, error) {
	var n int64
	for _, t := range tables {
		if !tableName.MatchString(t) {
			return n, fmt.Errorf("idempotency: invalid table name %q", t)
		}
		k, err := db.Affected(d.ExecContext(ctx, d.Rebind(`DELETE FROM `+t+` WHERE created_at < ?`), d.Time(cutoff)))
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
