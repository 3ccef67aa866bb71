package patient

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/outbox"
	"github.com/pms/pms/pkg/platform/shred"
)

// AuditTable is the patient service's audit log table.
const AuditTable = "audit_log"

// Store keeps patients, their version history, idempotency keys and the audit log in the
// service's own database (PostgreSQL or SQLite, one SQL for both). Every change is one
// transaction that also writes its history row, so a record and its history never disagree.
type Store struct {
	db     *db.DB
	events *outbox.Outbox
	// forUpdate locks the row being changed on PostgreSQL; SQLite's write transaction
	// (BEGIN IMMEDIATE) already excludes other writers.
	forUpdate string
	// keys are the patients' data keys that seal the PHI of their events (crypto-shredding).
	keys *shred.Keys
	// journal, when set, records every erasure outside the database (erase_journal.go).
	journal *ErasureJournal
	// reads serves get: concurrent reads by id share one statement (store_get.go).
	reads *getBatcher
	// stats is what PostgreSQL's statistics say of the searched columns (searchStats), and
	// statsAt when they were read (unix nanoseconds), at most once per StatsTTL.
	stats   atomic.Pointer[searchStats]
	statsAt atomic.Int64
	// counted is how many searches counted their matches (countMatches), for the tests that
	// prove a dense search did not.
	counted atomic.Int64
	// afterCommit, set by tests only, runs after a change's transaction committed and before
	// the service settles its audit entry: the window in which the writer may chain it first.
	afterCommit func(ctx context.Context)
}

// DatabaseOptions are how the patient service opens its database: every connection starts
// with sequential scans discouraged, which its searches rely on (list) and its other queries,
// all by key or by index, do not mind. Plans are left to PostgreSQL's default: a statement
// prepared by pgx may keep a generic plan after five runs, which a lookup by key, an audit
// entry or an outbox row wants (no planning per call). The statements whose plan depends on
// their values, searches, duplicate candidates and the email check, are planned on every call
// instead (db.PlannedPerCall). The pool once forced custom plans on every statement
// (plan_cache_mode = force_custom_plan); get by id, served faster without (issue 20 item 2).
func DatabaseOptions() []db.Option {
	return []db.Option{db.WithSetting("enable_seqscan", "off")}
}

// NewStore returns a Store over a migrated database.
func NewStore(d *db.DB) *Store {
	s := &Store{db: d, events: outbox.New(d, outbox.Options{}), reads: newGetBatcher(d)}
	if d.Dialect == db.Postgres {
		s.forUpdate = " FOR UPDATE"
	}
	// A process-lifetime key-encryption key: enough for tests and tools; the service passes
	// its own, kept in a file, with UseKeys so the data keys open after a restart.
	kek := make([]byte, shred.KeySize)
	_, _ = rand.Read(kek)
	s.keys, _ = shred.New(d, kek)
	return s
}

// UseKeys makes the store seal with keys (shred.New over the service's key-encryption key).
func (s *Store) UseKeys(keys *shred.Keys) { s.keys = keys }

// DB returns the underlying database, for readiness checks.
func (s *Store) DB() *db.DB { return s.db }

// Outbox returns the outbox every change writes its PatientEvent to, in the change's own
// transaction; the service's relay publishes it, and the audit writer adds its entries to it.
func (s *Store) Outbox() *outbox.Outbox { return s.events }

// inTx runs fn in a transaction and, once it committed, wakes the outbox relay. The change's
// audit entry, when ctx carries one (audit.WithPending), is recorded in the same transaction.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	if err := audit.InTx(ctx, s.db, fn); err != nil {
		return err
	}
	s.events.Wake()
	if s.afterCommit != nil {
		s.afterCommit(ctx)
	}
	return nil
}

// addEvent writes the PatientEvent of change to the outbox within tx.
func (s *Store) addEvent(ctx context.Context, tx *sqlx.Tx, p Patient, change string, m changeMeta) error {
	keyFor := s.keys.ForWrite
	if change == ChangeCreated {
		keyFor = s.keys.ForNew // a new id has no data key yet: no lookup (store_create.go)
	}
	seal, err := keyFor(ctx, tx, p.ID)
	if err != nil {
		return err
	}
	msg, err := patientEvent(p, change, m, seal)
	if err != nil {
		return errs.Wrap(errs.Internal, "internal error", err)
	}
	return s.events.Add(ctx, tx, msg)
}

const patientColumns = `seq, id, mrn, name, family, given, gender, phone, identifiers, email, address, date_of_birth, registered_date, version, created_at, updated_at, deleted_at, confidentiality, merged_into`

type patientRow struct {
	Seq            int64          `db:"seq"`
	ID             string         `db:"id"`
	MRN            sql.NullString `db:"mrn"`
	Name           string         `db:"name"`
	Family         string         `db:"family"`
	Given          string         `db:"given"` // a JSON array (encodeGiven)
	Gender         string         `db:"gender"`
	Phone          string         `db:"phone"`
	Identifiers    string         `db:"identifiers"` // a JSON array sorted by system and value (rowIdentifiers)
	Email          string         `db:"email"`
	Address        string         `db:"address"`
	DateOfBirth    string         `db:"date_of_birth"`
	RegisteredDate string         `db:"registered_date"`
	Version        int64          `db:"version"`
	CreatedAt      db.Timestamp   `db:"created_at"`
	UpdatedAt      db.Timestamp   `db:"updated_at"`
	DeletedAt      db.Timestamp   `db:"deleted_at"`
	// Confidentiality is "normal" or "restricted" (migration 00020).
	Confidentiality string `db:"confidentiality"`
	// MergedInto is the survivor a merged record was merged into (migration 00026).
	MergedInto sql.NullString `db:"merged_into"`
}

// dest is where a row of patientColumns scans to, in their order: list scans 500 rows by hand
// instead of through sqlx's reflection, which cost a search about 5% of its CPU.
func (r *patientRow) dest() []any {
	return []any{&r.Seq, &r.ID, &r.MRN, &r.Name, &r.Family, &r.Given, &r.Gender, &r.Phone, &r.Identifiers, &r.Email,
		&r.Address, &r.DateOfBirth, &r.RegisteredDate, &r.Version, &r.CreatedAt, &r.UpdatedAt, &r.DeletedAt, &r.Confidentiality, &r.MergedInto}
}

func (r patientRow) patient() Patient {
	return Patient{
		ID: r.ID, MRN: r.MRN.String, Name: r.Name, Family: r.Family, Given: decodeGiven(r.Given), Gender: r.Gender, Phone: r.Phone,
		Identifiers: withMRN(r.MRN.String, decodeIdentifiers(r.Identifiers)), Email: r.Email, Address: r.Address,
		DateOfBirth: r.DateOfBirth, RegisteredDate: r.RegisteredDate, Version: r.Version,
		CreatedAt: r.CreatedAt.Time, UpdatedAt: r.UpdatedAt.Time, Confidentiality: r.Confidentiality, MergedInto: r.MergedInto.String,
	}
}

// changeMeta says who made a change, for the history row.
type changeMeta struct {
	At        time.Time
	Actor     string
	Role      string
	RequestID string
}

// IdempotencyTable keeps the idempotency keys of creates (pruned after the retention).
const IdempotencyTable = "idempotency_keys"

// keys is where a create's Idempotency-Key is kept with the id of the patient it made.
var keys = idempotency.Table{Name: IdempotencyTable, Result: "resource_id"}

// create inserts a new patient (ID, fields and dates set by the caller; MRN from its
// registration sequence number), its first history row, its PATIENT_CREATED event and, when
// given, its idempotency key, in one transaction. A concurrent create with the same key waits for this one and then
// sees the key taken (idempotency.ErrTaken). Its email must be held by no other live patient
// but the confirmed ones (checkEmail), which it returns as the holders to audit.
func (s *Store) create(ctx context.Context, p Patient, m changeMeta, idem *idempotency.Key, confirmed []string) (Patient, []string, error) {
	var holders []string
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := keys.Claim(ctx, tx, s.db, idem, p.ID, m.At); err != nil {
			return err
		}
		var err error
		if holders, err = s.checkEmail(ctx, tx, p.ID, p.Email, confirmed); err != nil {
			return err
		}
		if check := duplicateCheckFrom(ctx); check != nil { // duplicates.go
			if p.PossibleDuplicates, err = check(tx); err != nil {
				return err
			}
		}
		seq, err := s.insertPatient(ctx, tx, p, m)
		if err != nil {
			return err
		}
		if err := s.insertMatchKeys(ctx, tx, []Patient{p}); err != nil { // duplicates_store.go; a new id has none to replace
			return err
		}
		if err := s.addIdentifiers(ctx, tx, p.ID, p.Identifiers); err != nil {
			return err
		}
		p.MRN = MRN(seq)
		p.Identifiers = withMRN(p.MRN, p.Identifiers)
		p.Version = 1
		if err := s.insertVersion(ctx, tx, p, ChangeCreated, m); err != nil {
			return err
		}
		return s.addEvent(ctx, tx, p, ChangeCreated, m)
	})
	if err != nil {
		return Patient{}, nil, err
	}
	return p, holders, nil
}

func (s *Store) insertVersion(ctx context.Context, tx *sqlx.Tx, p Patient, change string, m changeMeta) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO patient_versions
		(patient_id, version, change, mrn, name, family, given, gender, phone, identifiers, email, address, date_of_birth, registered_date, created_at, changed_at, changed_by, role, request_id, confidentiality, merged_into)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		p.ID, p.Version, change, p.MRN, p.Name, p.Family, encodeGiven(p.Given), p.Gender, p.Phone, encodeIdentifiers(p.Identifiers), p.Email, p.Address, p.DateOfBirth, p.RegisteredDate,
		s.db.Time(p.CreatedAt), s.db.Time(m.At), m.Actor, m.Role, m.RequestID, p.Confidentiality, p.MergedInto)
	return db.Classify(err)
}

// get returns the live patient id, ErrGone when it was deleted, ErrNotFound when unknown. A
// merged record is returned as it is, with MergedInto naming its survivor (merge.go): REST
// answers it with a redirect, FHIR with the record and its replaced-by link.
func (s *Store) get(ctx context.Context, id string) (Patient, error) {
	r, err := s.reads.get(ctx, id)
	p, err := rowResult(r, err)
	if r.MergedInto.Valid && IsMerged(err) {
		err = nil
	}
	if err != nil {
		return Patient{}, err
	}
	return p, nil
}

func rowResult(r patientRow, err error) (Patient, error) {
	if errors.Is(err, sql.ErrNoRows) {
		return Patient{}, ErrNotFound
	}
	if err != nil {
		return Patient{}, db.Classify(err)
	}
	if r.MergedInto.Valid {
		// Before the deletion check: a merged record is marked deleted too (migration 00026).
		return r.patient(), mergedError(r.MergedInto.String)
	}
	if !r.DeletedAt.IsZero() {
		return Patient{}, ErrGone
	}
	return r.patient(), nil
}

// list returns up to limit live patients matching q after the keyset position afterSeq,
// in registration order, whether more follow, and the number of all matches (see countMatches).
//
// On PostgreSQL a filtered search runs with sequential scans discouraged: the planner's cost
// of the trigram GIN indexes is far above what they cost (12 ms against a sequential scan's
// 83 ms for a rare 4-character substring at 100k patients), so it would read the whole table
// to find a few rows. The patient service's connections start with enable_seqscan off
// (DatabaseOptions), which costs a search nothing; on a pool opened without it a filtered
// search sets it in a read-only transaction of its own, three more round trips (and about 12%
// of a 500-record search's CPU, ops/bench/search-audit.sh).
func (s *Store) list(ctx context.Context, q ListQuery, afterSeq int64, limit int) (out []Patient, last int64, more bool, total Total, err error) {
	cond, args := s.searchCondition(q)
	filtered := len(args) > 0
	// Every statement of a search is planned for its values (db.PlannedPerCall): a generic
	// plan, costed without them, served an exact email through its trigram index at a
	// million patients (40-130 ms a search against 0.02 ms), and a LIKE pattern or a range
	// chooses its index by its value.
	var qr sqlx.QueryerContext = s.db
	if filtered && s.db.Dialect == db.Postgres && s.db.Setting("enable_seqscan") != "off" {
		tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return nil, 0, false, Total{}, db.Classify(err)
		}
		defer func() { _ = tx.Rollback() }() // read-only: nothing to commit
		if _, err := tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return nil, 0, false, Total{}, db.Classify(err)
		}
		qr = tx
	}
	qr = s.db.PlannedPerCall(qr)
	// The walks in registration order test each record read with walkCondition.
	wcond, wargs := cond, args
	if filtered {
		wcond, wargs = s.walkCondition(q)
		var dense bool
		if out, last, more, total, dense, err = s.densePage(ctx, qr, q, wcond, wargs, afterSeq, limit); err != nil || dense {
			return out, last, more, total, err
		}
	}
	var found []int64
	keep := 0
	if filtered {
		keep = countedPositions(limit)
	}
	if total, found, err = s.countMatches(ctx, qr, cond, args, afterSeq, keep); err != nil {
		return nil, 0, false, Total{}, err
	}
	if !filtered {
		out, last, more, err = s.page(ctx, qr, "patients", nil, cond, args, afterSeq, limit, "seq", total.N)
		return out, last, more, total, err
	}
	// The count found up to ExactCountLimit+1 matches (on PostgreSQL in the order of the
	// table's pages, which for a table written in registration order is nearly seq order),
	// and they bound the page (pageBound).
	from, fromArgs, bound, boundArgs, order, cut := s.pageBound(found, total, afterSeq, limit)
	if order != "" {
		c, a := cond, args
		if from == walkFrom {
			c, a = wcond, wargs
		} else if from == "" {
			from = "patients"
		}
		out, last, more, err = s.page(ctx, qr, from, fromArgs, c+bound, append(append([]any{}, a...), boundArgs...), afterSeq, limit, order, total.N)
		if err != nil || !cut || more {
			return out, last, more, total, err
		}
		// The first matches did not fill the page: one of them changed since the count.
		// Read the page through the search's indexes, as a page the count does not bound.
		out, last, more, err = s.page(ctx, qr, "patients", nil, cond, args, afterSeq, limit, "seq + 0", total.N)
		return out, last, more, total, err
	}
	// Many matches, few of them found past the position (a later page): they come fastest in
	// seq order where they are spread over the table; a term common only among recent records
	// (a name registered a thousand times this month) makes that walk read every older
	// record first: 1.9 s a search at 100k patients in the soak (issue 20 item 7). So the
	// walk reads at most WalkRows(limit) records past the position, and a page it does not
	// fill comes from the search's indexes, sorted ("ORDER BY seq + 0" keeps the planner off
	// walking the seq index in order, which it picks when it overestimates the matches and
	// which then reads every row to find a rare one).
	out, last, more, err = s.page(ctx, qr, walkFrom,
		[]any{afterSeq, WalkRows(limit)}, wcond, wargs, afterSeq, limit, "seq", total.N)
	if err != nil || more {
		return out, last, more, total, err
	}
	out, last, more, err = s.page(ctx, qr, "patients", nil, cond, args, afterSeq, limit, "seq + 0", total.N)
	return out, last, more, total, err
}

// pageBound narrows a filtered search's page query with the matches its count found past the
// position (their seq, in order, the first limit+1+PageSlack at least): from, when not "",
// replaces the patients table (with fromArgs before the condition's), bound is added to the
// condition (boundArgs after its own), order is the page's ORDER BY. It returns no order when
// the found matches do not bound the page.
//
//   - Every match counted (the total is exact): the page is among the found matches: limit+1
//     lookups by seq instead of the index bitmap of every match, read and sorted (up to
//     ExactCountLimit records). Only the first limit+1+PageSlack of them are given (cut says
//     so): looking up every one cost a search with 800 matches at a million patients 800
//     lookups for a page of 50. A record changed since the count can leave that page short;
//     the caller then reads it through the search's indexes.
//   - More matches than counted: if limit+1 of the found ones lie past the position, the
//     page ends at or before the (limit+1)-th of them, S. A short range up to S is walked
//     in seq order (the page's records and the ones between them); a long one (the found
//     matches are recent, or rare) is read through the search's indexes, limited to the
//     range. At a million patients a term on one record in 35 read the index bitmap of its
//     28,000 matches for each page (12 searches a second, make bench-search); its first
//     page now walks about 1,800 records.
func (s *Store) pageBound(past []int64, total Total, afterSeq int64, limit int) (from string, fromArgs []any, bound string, boundArgs []any, order string, cut bool) {
	if !total.Estimated {
		if len(past) == 0 {
			past = []int64{0} // no match past the position: an empty page (seq starts at 1)
		}
		if n := max(1, limit+1+PageSlack); len(past) > n {
			past, cut = past[:n], true
		}
		if s.db.Dialect == db.Postgres {
			return lookupFrom, []any{past}, "", nil, "seq", cut
		}
		in, inArgs, err := sqlx.In(" AND seq IN (?)", past)
		if err == nil {
			return "", nil, in, inArgs, "seq", cut
		}
		// sqlx.In fails only on an empty list, which past never is: fall through to the walk.
		return "", nil, "", nil, "", false
	}
	if len(past) <= limit {
		return "", nil, "", nil, "", false
	}
	end := past[limit]
	if end-afterSeq <= int64(WalkRows(limit)) {
		return walkFrom, []any{afterSeq, end - afterSeq}, "", nil, "seq", false
	}
	return "", nil, " AND seq <= ?", []any{end}, "seq + 0", false
}

// walkFrom is a page query's FROM for a walk in registration order: the records after a
// position (its first argument), at most a number of them (its second).
const walkFrom = `(SELECT * FROM patients WHERE seq > ? ORDER BY seq LIMIT ?) AS patients`

// lookupFrom is a page query's FROM on PostgreSQL for the counted matches (its argument, an
// array of seq): looked up by seq whatever the statistics say. Flattened, the search's own
// index won where they underestimated it: a month of births at a million patients, 856
// matches estimated at 45, read all 846 of their heap pages to keep the 67 given (2.9 ms,
// 0.86 ms this way). OFFSET 0 keeps the search's condition out of the subquery, as in
// candidatesQuery (TestCountedPagePlanWithoutStatistics).
const lookupFrom = `(SELECT * FROM patients WHERE seq = ANY(?) OFFSET 0) AS patients`

// countedPositions is how many of a counted search's matches past the position countMatches
// returns for a page of limit: the limit+1+PageSlack pageBound looks up, and one more, so
// that pageBound knows (cut) there were more than it gave, and a page that comes back short
// is read again rather than taken for the last.
func countedPositions(limit int) int { return limit + 2 + max(PageSlack, 0) }

// PageSlack is how many counted matches past a page's limit+1 its lookup is given (pageBound),
// so that a few records changed since the count still leave the page full.
var PageSlack = 16

// WalkRows is the most records a search with many matches reads in registration order for
// a page of limit before it looks the page up through its indexes instead (Store.list):
// enough for a term on one record in twenty, and small beside what the indexes' way costs,
// a bitmap of every match (more than ExactCountLimit). A walk of 20,000 records whatever
// the page cost the soak's searches 0.8 s at its p99 once their names passed a thousand
// registrations.
var WalkRows = func(limit int) int { return max(2000, 20*(limit+1)) }

// page reads up to limit records of from matching cond after the keyset position afterSeq,
// in order; last is the keyset position of the page's last record, more whether another
// matched past it. matches (the search's total) sizes the page.
func (s *Store) page(ctx context.Context, qr sqlx.QueryerContext, from string, fromArgs []any, cond string, args []any,
	afterSeq int64, limit int, order string, matches int64) (out []Patient, last int64, more bool, err error) {
	pageArgs := append(append(append([]any{}, fromArgs...), args...), afterSeq, limit+1)
	rows, err := qr.QueryxContext(ctx, s.pageQuery(from, cond, order), pageArgs...)
	if err != nil {
		return nil, 0, false, db.Classify(err)
	}
	defer func() { _ = rows.Close() }()
	out = make([]Patient, 0, min(limit+1, int(matches)+1))
	var r patientRow
	dest := r.dest()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, 0, false, db.Classify(err)
		}
		out = append(out, r.patient())
		if len(out) <= limit {
			last = r.Seq // the keyset position of the page's last record, not of the one past it
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, db.Classify(err)
	}
	if more = len(out) > limit; more {
		out = out[:limit]
	}
	return out, last, more, nil
}

// pageQuery is page's statement: its arguments are from's, cond's, the position and the
// limit.
func (s *Store) pageQuery(from, cond, order string) string {
	return s.db.Rebind(`SELECT ` + patientColumns + ` FROM ` + from + ` WHERE ` + cond + ` AND seq > ? ORDER BY ` + order + ` LIMIT ?`)
}

// MinSubstringLen is the shortest q searched as a substring: trigram indexes cannot serve a
// shorter one, so a q of one or two characters matches the start of a name, email or MRN.
const MinSubstringLen = 3

// searchCondition is the WHERE clause of a search and its arguments. Every form is served by
// an index (migrations 00001 and 00023): a substring q by trigrams (pg_trgm GIN; SQLite's FTS5
// trigram table narrows the candidates, the LIKE keeps the answer exactly as it was), a short
// q by prefix b-trees, email and date of birth by their b-trees.
func (s *Store) searchCondition(q ListQuery) (string, []any) { return s.condition(q, false) }

// walkCondition is searchCondition for a walk in registration order (densePage, list), which
// tests each record it reads rather than asking an index: on PostgreSQL a q is matched
// against the record's search_text (migration 00031), one LIKE where searchCondition has two
// lower() calls and three LIKEs, a q holding search_text's separator excepted.
func (s *Store) walkCondition(q ListQuery) (string, []any) { return s.condition(q, true) }

// searchSep separates the fields of search_text (migration 00031).
const searchSep = "\x01"

// condition is searchCondition, or walkCondition when walk is set.
func (s *Store) condition(q ListQuery, walk bool) (string, []any) {
	where := []string{"deleted_at IS NULL"}
	var args []any
	if lq := strings.ToLower(q.Q); walk && lq != "" && s.db.Dialect == db.Postgres && !strings.Contains(lq, searchSep) {
		// A substring lies within one field, since the pattern cannot hold the separator; a
		// prefix follows one.
		pattern := "%" + escapeLike(lq) + "%"
		if utf8.RuneCountInString(lq) < MinSubstringLen {
			pattern = "%" + searchSep + escapeLike(lq) + "%"
		}
		where = append(where, `search_text LIKE ? ESCAPE '\'`)
		args = append(args, pattern)
	} else if q.Q != "" {
		like := `(lower(name) LIKE ? ESCAPE '\' OR lower(email) LIKE ? ESCAPE '\' OR mrn LIKE ? ESCAPE '\')`
		if utf8.RuneCountInString(lq) >= MinSubstringLen {
			pattern := "%" + escapeLike(lq) + "%"
			where = append(where, like)
			args = append(args, pattern, pattern, pattern)
			if s.db.Dialect == db.SQLite {
				where = append(where, `seq IN (SELECT rowid FROM patients_search WHERE patients_search MATCH ?)`)
				args = append(args, `"`+strings.ReplaceAll(lq, `"`, `""`)+`"`)
			}
		} else {
			pattern := escapeLike(lq) + "%"
			if s.db.Dialect == db.SQLite {
				// SQLite's LIKE cannot use an index on an expression; the same prefix as a
				// byte range can, one index per column (its planner scans a whole index for
				// the OR of the three), and the LIKE keeps the answer exact.
				lo, hi := lq, prefixEnd(lq)
				where = append(where, like, `seq IN (
					SELECT seq FROM patients WHERE deleted_at IS NULL AND lower(name) >= ? AND lower(name) < ?
					UNION SELECT seq FROM patients WHERE deleted_at IS NULL AND lower(email) >= ? AND lower(email) < ?
					UNION SELECT seq FROM patients WHERE mrn >= ? AND mrn < ?)`)
				args = append(args, pattern, pattern, pattern, lo, hi, lo, hi, lo, hi)
			} else {
				where = append(where, like)
				args = append(args, pattern, pattern, pattern)
			}
		}
	}
	if q.Email != "" {
		where = append(where, "lower(email) = ?")
		args = append(args, strings.ToLower(q.Email))
	}
	if q.DateOfBirth != "" {
		where = append(where, "date_of_birth = ?")
		args = append(args, q.DateOfBirth)
	}
	if id, ok := parseIdentifierQuery(q.Identifier); ok {
		if id.System == SystemMRN {
			where = append(where, "mrn = ?")
			args = append(args, id.Value)
		} else {
			// Served by the identifiers' unique index of live pairs (migration 00024).
			where = append(where, "id IN (SELECT patient_id FROM patient_identifiers WHERE system = ? AND value = ? AND deleted_at IS NULL)")
			args = append(args, id.System, id.Value)
		}
	}
	where, args = s.demographicConditions(q, where, args)
	return strings.Join(where, " AND "), args
}

// prefixEnd is the least string greater than every string that starts with p, in byte order
// (SQLite's BINARY collation): p with its last byte below 0xff incremented.
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return p + "\xff"
}

// ExactCountLimit is the most matches a search counts: up to it X-Total-Count is exact;
// above it counting every page would read every match (a million rows for the plain list),
// so the total is an estimate, flagged as such (docs/api.md).
const ExactCountLimit = 1000

// Total is the number of a search's matches, exact or estimated.
type Total struct {
	N         int64
	Estimated bool
}

// countMatches counts cond's matches up to ExactCountLimit and, when keep is not 0, returns
// the first keep of the ones it found past afterSeq, in seq order (pageBound's). Above it the
// total is PostgreSQL's planner estimate (statistics, no rows read) but never less than what
// was counted; SQLite keeps no statistics of the kind, so there it is the lower bound
// ExactCountLimit+1. On PostgreSQL the positions are picked in the statement: a search with
// 800 matches (a month of births at a million patients) sent all 800 to be scanned, sorted
// and cut here, a third of its CPU (BenchmarkCountedRangeSearch).
func (s *Store) countMatches(ctx context.Context, qr sqlx.QueryerContext, cond string, args []any, afterSeq int64, keep int) (Total, []int64, error) {
	s.counted.Add(1)
	var found []int64
	var n int64
	switch {
	case keep == 0:
		countArgs := append(append([]any{}, args...), ExactCountLimit+1)
		if err := sqlx.GetContext(ctx, qr, &n, s.db.Rebind(`SELECT count(*) FROM (SELECT 1 FROM patients WHERE `+cond+` LIMIT ?) AS m`), countArgs...); err != nil {
			return Total{}, nil, db.Classify(err)
		}
	case s.db.Dialect == db.Postgres:
		countArgs := append(append([]any{afterSeq, keep}, args...), ExactCountLimit+1)
		var r struct {
			N    int64  `db:"n"`
			Seqs string `db:"seqs"`
		}
		if err := sqlx.GetContext(ctx, qr, &r, s.db.Rebind(`SELECT count(*) AS n,
			coalesce(array_to_string((array_agg(seq ORDER BY seq) FILTER (WHERE seq > ?))[1:?], ','), '') AS seqs
			FROM (SELECT seq FROM patients WHERE `+cond+` LIMIT ?) AS m`), countArgs...); err != nil {
			return Total{}, nil, db.Classify(err)
		}
		n, found = r.N, make([]int64, 0, keep)
		for f := range strings.SplitSeq(r.Seqs, ",") {
			if f == "" {
				continue
			}
			seq, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return Total{}, nil, errs.Wrap(errs.Internal, "internal error", err)
			}
			found = append(found, seq)
		}
	default:
		countArgs := append(append([]any{}, args...), ExactCountLimit+1)
		rows, err := qr.QueryContext(ctx, s.db.Rebind(`SELECT seq FROM patients WHERE `+cond+` LIMIT ?`), countArgs...)
		if err != nil {
			return Total{}, nil, db.Classify(err)
		}
		defer func() { _ = rows.Close() }()
		found = make([]int64, 0, 64)
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				return Total{}, nil, db.Classify(err)
			}
			n++
			if seq > afterSeq {
				found = append(found, seq)
			}
		}
		if err := rows.Err(); err != nil {
			return Total{}, nil, db.Classify(err)
		}
		slices.Sort(found)
		found = found[:min(len(found), keep)]
	}
	if n <= ExactCountLimit {
		return Total{N: n}, found, nil
	}
	if s.db.Dialect == db.Postgres {
		est, err := s.plannerEstimate(ctx, qr, cond, args)
		if err != nil {
			return Total{}, nil, err
		}
		n = max(n, est)
	}
	return Total{N: n, Estimated: true}, found, nil
}

// plannerEstimate is PostgreSQL's estimate of cond's matches: statistics, no rows read.
func (s *Store) plannerEstimate(ctx context.Context, qr sqlx.QueryerContext, cond string, args []any) (int64, error) {
	var plan string
	if err := sqlx.GetContext(ctx, qr, &plan, s.db.Rebind(`EXPLAIN (FORMAT JSON) SELECT 1 FROM patients WHERE `+cond), args...); err != nil {
		return 0, db.Classify(err)
	}
	var p []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		}
	}
	if json.Unmarshal([]byte(plan), &p) != nil || len(p) != 1 {
		return 0, nil
	}
	return int64(p[0].Plan.Rows), nil
}

// DenseSearchRows is the table size, in PostgreSQL's statistics, from which a search may go
// uncounted (densePage); below it every search counts its matches up to ExactCountLimit.
var DenseSearchRows int64 = 20 * ExactCountLimit

// densePage serves a page of a dense search without counting its matches; dense is false when
// the search must be counted (list goes on to countMatches). Proving that a search has more
// than ExactCountLimit matches reads ExactCountLimit+1 of them, and through a trigram index
// it reads every match: a substring on one record in 35 at a million patients built a bitmap
// of 28,000 matches per page, 15-60 ms, where the same search at a thousand patients reads
// 28. So on PostgreSQL, in a table of at least DenseSearchRows, a search its statistics expect
// to match more than ExactCountLimit records (searchStats.estimate) is first walked in
// registration order for three times the records that estimate says a page needs (the
// statistics sample about a hundred values a column: a term on one record in 35 read as
// anything from one in 17 to one in 52 over six ANALYZEs, and a walk of twice failed in one
// bench run of five), if that is at most DenseWalkRows; when the walk fills the page, that
// page is the answer and the total is the estimate, flagged (docs/api.md). The statistics
// gate it and not the walk alone: the walk starts at the
// oldest records, where a term can cluster (an MRN prefix matches the first registrations
// only), and the statistics sample the whole table. When the walk does not fill the page the
// search is counted, as before. cond and args are the walk's (walkCondition).
func (s *Store) densePage(ctx context.Context, qr sqlx.QueryerContext, q ListQuery, cond string, args []any, afterSeq int64, limit int) (out []Patient, last int64, more bool, total Total, dense bool, err error) {
	if s.db.Dialect != db.Postgres {
		return nil, 0, false, Total{}, false, nil
	}
	st, err := s.searchStats(ctx, qr)
	if err != nil || st.rows < DenseSearchRows {
		return nil, 0, false, Total{}, false, err
	}
	est := st.estimate(q)
	if est <= ExactCountLimit {
		return nil, 0, false, Total{}, false, nil
	}
	need := 3 * int64(limit+1) * st.rows / est
	if need > int64(DenseWalkRows(limit)) {
		return nil, 0, false, Total{}, false, nil
	}
	walk := max(WalkRows(limit), int(need))
	out, last, more, err = s.page(ctx, qr, walkFrom,
		[]any{afterSeq, walk}, cond, args, afterSeq, limit, "seq", est)
	if err != nil || !more {
		return nil, 0, false, Total{}, false, err
	}
	return out, last, more, Total{N: est, Estimated: true}, true, nil
}

// DenseWalkRows is the longest walk densePage takes for a page of limit: a longer one is
// for a search too sparse for the walk to pay (a month of births at a million patients, 856
// matches, whose estimate can read 3,000 from a single histogram bucket, walked 10,000
// records in vain before it was counted, and served half the searches a second that
// counting alone does).
var DenseWalkRows = func(limit int) int { return 5 * WalkRows(limit) }

// StatsTTL is how long the statistics a store judges searches by are taken as read.
const StatsTTL = 30 * time.Second

// searchStats returns the statistics of the patients table, read again when older than
// StatsTTL. Before the first ANALYZE there are none: rows is then below DenseSearchRows.
func (s *Store) searchStats(ctx context.Context, qr sqlx.QueryerContext) (*searchStats, error) {
	now := time.Now().UnixNano()
	if st := s.stats.Load(); st != nil && now-s.statsAt.Load() < int64(StatsTTL) {
		return st, nil
	}
	st, err := readSearchStats(ctx, qr)
	if err != nil {
		return nil, err
	}
	s.stats.Store(st)
	s.statsAt.Store(now)
	return st, nil
}

// escapeLike escapes LIKE's wildcards so a search term matches literally.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// change locks patient id, checks it is live and at version ifMatch (when not zero), lets
// edit produce the new record (returning changed=false leaves everything as it is), and
// writes it with its history row and its event, all in one transaction.
func (s *Store) change(ctx context.Context, id string, ifMatch int64, kind string, m changeMeta,
	edit func(tx *sqlx.Tx, cur Patient) (next Patient, changed bool, err error)) (Patient, error) {
	var out Patient
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var r patientRow
		err := tx.GetContext(ctx, &r, tx.Rebind(`SELECT `+patientColumns+` FROM patients WHERE id = ?`+s.forUpdate), id)
		cur, err := rowResult(r, err)
		if err != nil {
			return err
		}
		if ifMatch != 0 && ifMatch != cur.Version {
			return ErrVersionMismatch
		}
		next, changed, err := edit(tx, cur)
		if err != nil {
			return err
		}
		if !changed {
			out = cur
			return nil
		}
		next.Version = cur.Version + 1
		next.UpdatedAt = m.At
		var deletedAt any
		if kind == ChangeDeleted {
			deletedAt = s.db.Time(m.At)
		}
		n, err := db.Affected(tx.ExecContext(ctx, tx.Rebind(`UPDATE patients SET name = ?, family = ?, given = ?, gender = ?, phone = ?, identifiers = ?, email = ?, address = ?, date_of_birth = ?, version = ?, updated_at = ?, deleted_at = ?
			WHERE id = ? AND version = ?`),
			next.Name, next.Family, encodeGiven(next.Given), next.Gender, next.Phone, rowIdentifiers(next.Identifiers), next.Email, next.Address, next.DateOfBirth, next.Version, s.db.Time(m.At), deletedAt, id, cur.Version))
		if err != nil {
			return err
		}
		if n != 1 {
			return ErrVersionMismatch // lost a race the row lock should have prevented
		}
		if !reflect.DeepEqual(clientIdentifiers(next.Identifiers), clientIdentifiers(cur.Identifiers)) {
			if err := s.writeIdentifiers(ctx, tx, id, next.Identifiers); err != nil {
				return err
			}
		}
		if kind == ChangeDeleted {
			// A deleted record frees its identifiers for live patients (the partial index).
			if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE patient_identifiers SET deleted_at = ? WHERE patient_id = ?`), s.db.Time(m.At), id); err != nil {
				return db.Classify(err)
			}
			if err := s.deleteMatchKeys(ctx, tx, id); err != nil { // no longer a candidate
				return err
			}
		} else if matchFieldsChanged(cur, next) {
			if err := s.writeMatchKeys(ctx, tx, []Patient{next}); err != nil {
				return err
			}
		}
		out = next
		if err := s.insertVersion(ctx, tx, next, kind, m); err != nil {
			return err
		}
		return s.addEvent(ctx, tx, next, kind, m)
	})
	return out, err
}

type versionRow struct {
	Version        int64        `db:"version"`
	Change         string       `db:"change"`
	MRN            string       `db:"mrn"`
	Name           string       `db:"name"`
	Family         string       `db:"family"`
	Given          string       `db:"given"`
	Gender         string       `db:"gender"`
	Phone          string       `db:"phone"`
	Identifiers    string       `db:"identifiers"`
	Email          string       `db:"email"`
	Address        string       `db:"address"`
	DateOfBirth    string       `db:"date_of_birth"`
	RegisteredDate string       `db:"registered_date"`
	CreatedAt      db.Timestamp `db:"created_at"`
	ChangedAt      db.Timestamp `db:"changed_at"`
	ChangedBy      string       `db:"changed_by"`
	Role           string       `db:"role"`
	RequestID      string       `db:"request_id"`
	// Confidentiality is the level the record had in this version.
	Confidentiality string `db:"confidentiality"`
	// MergedInto is the survivor this version was merged into ("" when none).
	MergedInto string `db:"merged_into"`
}

// history returns every version of patient id, oldest first; deleted records keep theirs.
func (s *Store) history(ctx context.Context, id string) ([]Version, error) {
	var rows []versionRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT version, change, mrn, name, family, given, gender, phone, identifiers, email, address, date_of_birth, registered_date,
		created_at, changed_at, changed_by, role, request_id, confidentiality, merged_into FROM patient_versions WHERE patient_id = ? ORDER BY version`), id); err != nil {
		return nil, db.Classify(err)
	}
	if len(rows) == 0 {
		if erased, err := s.erased(ctx, id); err != nil {
			return nil, err
		} else if erased {
			return nil, ErrErasedRecord
		}
		return nil, ErrNotFound
	}
	out := make([]Version, len(rows))
	for i, r := range rows {
		out[i] = Version{
			Version: r.Version, Change: r.Change, ChangedAt: r.ChangedAt.Time, ChangedBy: r.ChangedBy,
			Role: r.Role, RequestID: r.RequestID,
			Patient: Patient{ID: id, MRN: r.MRN, Name: r.Name, Family: r.Family, Given: decodeGiven(r.Given), Gender: r.Gender,
				Phone: r.Phone, Identifiers: withMRN(r.MRN, decodeIdentifiers(r.Identifiers)), Email: r.Email, Address: r.Address,
				DateOfBirth: r.DateOfBirth, RegisteredDate: r.RegisteredDate, Version: r.Version,
				CreatedAt: r.CreatedAt.Time, UpdatedAt: r.ChangedAt.Time, Confidentiality: r.Confidentiality, MergedInto: r.MergedInto},
		}
	}
	return out, nil
}

// auditLog reads the audit log, newest first.
func (s *Store) auditLog(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	entries, err := audit.List(ctx, s.db, AuditTable, audit.Query{
		SubjectID: q.PatientID, Actor: q.Actor, From: q.From, To: q.To, Limit: q.Limit,
	})
	if err != nil {
		return nil, db.Classify(err)
	}
	out := make([]AuditEntry, len(entries))
	for i, e := range entries {
		out[i] = AuditEntry{ID: e.ID, At: e.At, Actor: e.Actor, Role: e.Role, Action: e.Action,
			PatientID: e.SubjectID, Outcome: e.Outcome, RequestID: e.RequestID, ClientAddress: e.ClientAddress}
	}
	return out, nil
}

// encodePageToken and decodePageToken make the keyset position opaque to clients.
func encodePageToken(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("p1." + strconv.FormatInt(seq, 10)))
}

func decodePageToken(tok string) (int64, error) {
	bad := errs.Invalid(map[string]string{"pageToken": "is not a page token from this service"})
	if len(tok) > 64 {
		return 0, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), "p1.") {
		return 0, bad
	}
	n, err := strconv.ParseInt(string(b[3:]), 10, 64)
	if err != nil || n < 1 {
		return 0, bad
	}
	return n, nil
}
