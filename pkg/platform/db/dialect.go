package db

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pms/pms/pkg/platform/errs"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// timeLayout is how instants are stored on SQLite: fixed width and UTC, so text comparison
// orders them correctly (modernc's default layout trims trailing zeros and does not).
const timeLayout = "2006-01-02T15:04:05.000000Z"

// Time returns t as a query argument for this dialect: a timestamptz on PostgreSQL, a
// fixed-width UTC text on SQLite. Instants are kept to the microsecond on both.
func (d *DB) Time(t time.Time) any {
	t = t.UTC().Truncate(time.Microsecond)
	if d.Dialect == SQLite {
		return t.Format(timeLayout)
	}
	return t
}

// Timestamp scans an instant stored by either dialect.
type Timestamp struct{ time.Time }

// Scan implements sql.Scanner for time.Time (PostgreSQL) and text (SQLite).
func (ts *Timestamp) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		ts.Time = time.Time{}
		return nil
	case time.Time:
		ts.Time = x.UTC()
		return nil
	case string:
		return ts.parse(x)
	case []byte:
		return ts.parse(string(x))
	default:
		return fmt.Errorf("db: cannot scan %T into Timestamp", v)
	}
}

func (ts *Timestamp) parse(s string) error {
	for _, layout := range []string{timeLayout, time.RFC3339Nano, "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			ts.Time = t.UTC()
			return nil
		}
	}
	return fmt.Errorf("db: cannot parse time %q", s)
}

// Value implements driver.Valuer as fixed-width UTC text, which both dialects accept.
func (ts Timestamp) Value() (driver.Value, error) {
	return ts.Time.UTC().Truncate(time.Microsecond).Format(timeLayout), nil
}

// IsUniqueViolation reports whether err is a unique-constraint violation, optionally of the
// constraint or index whose name contains name ("" matches any).
func IsUniqueViolation(err error, name string) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505" && (name == "" || strings.Contains(pg.ConstraintName, name))
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		code := se.Code()
		if code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
			return name == "" || strings.Contains(se.Error(), name)
		}
	}
	return false
}

// Affected returns how many rows the statement that answered res, err changed, the error
// classified: the Exec-then-RowsAffected pair of a store that counts what it changed.
func Affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, Classify(err)
	}
	n, err := res.RowsAffected()
	return n, Classify(err)
}

// Classify turns a database error into a contract error: a lost connection, a server
// shutting down or a full pool becomes Unavailable (503; nothing was written, since every
// change is one transaction), a deadline becomes Timeout, a cancelled context Canceled, text PostgreSQL cannot hold (a NUL
// character, which only input brings) InvalidArgument, anything else Internal. Errors that
// already carry a kind pass through.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	// A deadline is Timeout; a caller that went away is Canceled, never Unavailable: the
	// database is fine, and calling it unavailable let any client that hangs up open the
	// gateway's circuit breaker (issue 13).
	if cerr := errs.FromContext(err, "the database did not answer in time"); cerr != nil {
		return cerr
	}
	if isConnectionError(err) {
		return errs.Wrap(errs.Unavailable, "the database is unavailable", err)
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) && (pg.Code == "22021" || pg.Code == "22P05") {
		// character_not_in_repertoire, untranslatable_character: the transports and services
		// refuse such text first; this keeps a path they missed a 400, not a 500.
		return errs.Wrap(errs.InvalidArgument, "the request holds text that cannot be stored (such as a NUL character)", err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code()&0xff == sqlite3.SQLITE_BUSY || se.Code()&0xff == sqlite3.SQLITE_LOCKED) {
		return errs.Wrap(errs.Unavailable, "the database is busy", err)
	}
	return errs.Wrap(errs.Internal, "internal error", err)
}

func isConnectionError(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// A refused connect is unavailability whatever the server said (its PgError is wrapped
	// inside: 55000 "not currently accepting connections" during a failover, 3D000 while a
	// database is being recreated...). The fault suite found these answered as 500s.
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		// Class 08: connection exception; 57P01..57P03: admin/crash shutdown, cannot connect now;
		// 53300: too many connections; 40001/40P01 serialization and deadlock: safe to retry.
		return strings.HasPrefix(pg.Code, "08") || strings.HasPrefix(pg.Code, "57P") ||
			pg.Code == "53300" || pg.Code == "40001" || pg.Code == "40P01"
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}
