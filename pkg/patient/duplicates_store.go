package patient

import (
	"context"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/patient/match"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
)

// matchKeysVersion is the blocking-key scheme the store writes (match.Keys hashed by
// matchKeyHash). BackfillMatchKeys re-keys every live record when the database holds an
// older one; raise it whenever match.Keys changes what it returns.
const matchKeysVersion = 1

// keyer computes blocking keys; its threshold does not matter, and the MRN's system is
// ignored because every registration gets a new MRN.
var keyer = match.New(match.Config{IgnoredSystems: []string{SystemMRN}})

// MaxCandidates bounds the records one duplicate check scores. The largest block measured at
// 100,000 synthetic patients held 128 records and the p99 registration's blocks 167 in all
// (docs/matching.md), so this is reached only by a pathological key (thousands of records
// with one phone number); the nearest records by registration order past it are not scored.
const MaxCandidates = 1000

// noPatient stands for "exclude nobody" where a query needs a UUID.
const noPatient = "00000000-0000-0000-0000-000000000000"

// personOf is p as the matching engine sees it.
func personOf(p Patient) match.Person {
	q := match.Person{Family: p.Family, Given: p.Given, Name: p.Name, Gender: p.Gender, DateOfBirth: p.DateOfBirth,
		Phone: p.Phone, Email: p.Email, Address: p.Address}
	for _, id := range p.Identifiers {
		q.Identifiers = append(q.Identifiers, match.Identifier{System: id.System, Value: id.Value})
	}
	return q
}

// matchKeyHash is the stored form of a blocking key: a 64-bit hash, so the table repeats no
// email, phone or identifier, and the index stays narrow. A collision only adds a candidate,
// which the score then rejects.
func matchKeyHash(key string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return int64(h.Sum64())
}

// matchKeys are the distinct hashed blocking keys of p.
func matchKeys(p Patient) []int64 {
	keys := keyer.Keys(personOf(p))
	out := make([]int64, 0, len(keys))
	seen := make(map[int64]bool, len(keys))
	for _, k := range keys {
		h := matchKeyHash(k)
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// writeMatchKeys replaces the blocking keys of the records ps within tx (an empty list for
// a deleted record: deleteMatchKeys).
func (s *Store) writeMatchKeys(ctx context.Context, tx *sqlx.Tx, ps []Patient) error {
	if len(ps) == 0 {
		return nil
	}
	ids := make([]any, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	q, args, err := sqlx.In(`DELETE FROM patient_match_keys WHERE patient_id IN (?)`, ids)
	if err != nil {
		return errs.Wrap(errs.Internal, "internal error", err)
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
		return db.Classify(err)
	}
	return s.insertMatchKeys(ctx, tx, ps)
}

// insertMatchKeys inserts the blocking keys of the records ps within tx. A create calls it
// alone: a record just inserted has no keys to replace, so writeMatchKeys' DELETE would be a
// round trip that finds nothing (issue 20 item 4).
func (s *Store) insertMatchKeys(ctx context.Context, tx *sqlx.Tx, ps []Patient) error {
	var rows []any
	for _, p := range ps {
		for _, k := range matchKeys(p) {
			rows = append(rows, k, p.ID)
		}
	}
	const perStatement = 1000 // 2,000 bound parameters: under both databases' limits
	for len(rows) > 0 {
		n := min(len(rows)/2, perStatement)
		stmt := `INSERT INTO patient_match_keys (key, patient_id) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?), ", n), ", ") + ` ON CONFLICT DO NOTHING`
		if _, err := tx.ExecContext(ctx, tx.Rebind(stmt), rows[:2*n]...); err != nil {
			return db.Classify(err)
		}
		rows = rows[2*n:]
	}
	return nil
}

// deleteMatchKeys removes the blocking keys of patient id: a deleted record is no
// candidate.
func (s *Store) deleteMatchKeys(ctx context.Context, tx *sqlx.Tx, id string) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM patient_match_keys WHERE patient_id = ?`), id)
	return db.Classify(err)
}

// matchFieldsChanged reports whether an update touched a field the blocking keys are made of.
func matchFieldsChanged(a, b Patient) bool {
	return a.Name != b.Name || a.Family != b.Family || strings.Join(a.Given, "\x00") != strings.Join(b.Given, "\x00") ||
		a.DateOfBirth != b.DateOfBirth || a.Phone != b.Phone || !strings.EqualFold(a.Email, b.Email) ||
		encodeIdentifiers(a.Identifiers) != encodeIdentifiers(b.Identifiers)
}

// duplicateCheckKey carries a registration's duplicate check into its transaction.
type duplicateCheckKey struct{}

// withDuplicateCheck has the create of ctx run check in its transaction (after the email
// check, before the insert): it returns the number of possible duplicates, or the refusal.
func withDuplicateCheck(ctx context.Context, check func(tx *sqlx.Tx) (int, error)) context.Context {
	return context.WithValue(ctx, duplicateCheckKey{}, check)
}

func duplicateCheckFrom(ctx context.Context) func(tx *sqlx.Tx) (int, error) {
	check, _ := ctx.Value(duplicateCheckKey{}).(func(tx *sqlx.Tx) (int, error))
	return check
}

// lockMatchKeys takes, on PostgreSQL, a transaction-scoped advisory lock on each blocking key
// of p, in ascending order (so two registrations never wait for each other in a cycle): two
// registrations sharing a key run their strict checks one after the other, and the second
// sees the first's record. SQLite's write transaction already runs alone.
func (s *Store) lockMatchKeys(ctx context.Context, tx *sqlx.Tx, p Patient) error {
	if s.db.Dialect != db.Postgres {
		return nil
	}
	keys := matchKeys(p)
	slices.Sort(keys)
	// One round trip: unnest yields the array's elements in order, and the aggregate takes
	// them as they come.
	_, err := tx.ExecContext(ctx, `SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k`, keys)
	return db.Classify(err)
}

// candidates returns the live records (but exclude) that share a blocking key with p, at
// most MaxCandidates, with their identifiers, read through q (the database, or a
// registration's transaction): two indexed lookups (keys, then records by id).
func (s *Store) candidates(ctx context.Context, q sqlx.QueryerContext, p Patient, exclude string) ([]Patient, error) {
	query, args, err := s.candidatesQuery(p, exclude)
	if err != nil || query == "" {
		return nil, err
	}
	var rows []patientRow
	// Planned for its keys (db.PlannedPerCall), as a search is.
	if err := sqlx.SelectContext(ctx, s.db.PlannedPerCall(q), &rows, query, args...); err != nil {
		return nil, db.Classify(err)
	}
	out := make([]Patient, len(rows))
	for i, r := range rows {
		out[i] = r.patient()
	}
	return out, nil // each row carries its identifiers (migration 00025)
}

// candidatesQuery is candidates' statement and arguments; "" when p has no blocking key.
func (s *Store) candidatesQuery(p Patient, exclude string) (string, []any, error) {
	keys := matchKeys(p)
	if len(keys) == 0 {
		return "", nil, nil
	}
	if exclude == "" {
		exclude = noPatient
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	// The keys are looked up first and the records then by their primary key, whatever the
	// statistics say. Left to itself, a planner without statistics on patient_match_keys (a
	// bulk-seeded or restored database before its first ANALYZE) walked every patient in seq
	// order probing the keys for each, 0.5 s a registration at 100,000 patients (issue 20
	// item 7); and one without statistics on patients (a new database, where autovacuum has not
	// analyzed it yet) joined the keys' records by hashing every live patient, so each
	// registration read the whole table (3.4 of a registration's 3.8 ms at 1,700 patients,
	// make bench-create). On PostgreSQL the ids are therefore an array the primary key is
	// probed with, behind OFFSET 0 so that "deleted_at IS NULL" is not pushed down to the
	// scan: it would make every partial index (all live records) a way to read them, which
	// the planner takes when it believes the table tiny. SQLite's planner joins the list by
	// the primary key without statistics.
	query := `WITH c AS MATERIALIZED (SELECT DISTINCT patient_id FROM patient_match_keys WHERE key IN (?))
		SELECT ` + patientColumns + ` FROM patients JOIN c ON patients.id = c.patient_id
		WHERE deleted_at IS NULL AND id <> ? ORDER BY seq LIMIT ?`
	if s.db.Dialect == db.Postgres {
		query = `SELECT ` + patientColumns + ` FROM (SELECT * FROM patients
		WHERE id = ANY(ARRAY(SELECT DISTINCT patient_id FROM patient_match_keys WHERE key IN (?))) OFFSET 0) AS patients
		WHERE deleted_at IS NULL AND id <> ? ORDER BY seq LIMIT ?`
	}
	query, args, err := sqlx.In(query, args, exclude, MaxCandidates)
	if err != nil {
		return "", nil, errs.Wrap(errs.Internal, "internal error", err)
	}
	return s.db.Rebind(query), args, nil
}

// backfillBatch is how many records one transaction of BackfillMatchKeys keys.
const backfillBatch = 1000

// BackfillMatchKeys writes the blocking keys of every live record when the database's key
// scheme (patient_match_keys_state) is older than the store's: after migration 00028 on a
// database with patients, or after a change of match.Keys. It runs when the service starts,
// before it serves; creates and updates of other replicas meanwhile write their own keys,
// and each batch locks its rows on PostgreSQL, so a record is never keyed from a stale read.
// On PostgreSQL an advisory lock keeps two starting replicas from doing it twice. It returns
// how many records it keyed.
func (s *Store) BackfillMatchKeys(ctx context.Context) (int, error) {
	if s.db.Dialect == db.Postgres {
		conn, err := s.db.Connx(ctx)
		if err != nil {
			return 0, db.Classify(err)
		}
		defer func() { _ = conn.Close() }()
		lock := matchKeyHash("patient-match-keys-backfill")
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lock); err != nil {
			return 0, db.Classify(err)
		}
		defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lock) }()
	}
	var version int
	if err := s.db.GetContext(ctx, &version, `SELECT version FROM patient_match_keys_state`); err != nil {
		return 0, db.Classify(err)
	}
	if version >= matchKeysVersion {
		return 0, nil
	}
	n := 0
	for after := int64(0); ; {
		var last int64
		var count int
		err := s.inTx(ctx, func(tx *sqlx.Tx) error {
			var rows []patientRow
			if err := tx.SelectContext(ctx, &rows, tx.Rebind(`SELECT `+patientColumns+` FROM patients WHERE seq > ? AND deleted_at IS NULL ORDER BY seq LIMIT ?`+s.forUpdate),
				after, backfillBatch); err != nil {
				return db.Classify(err)
			}
			ps := make([]Patient, len(rows))
			for i, r := range rows {
				ps[i] = r.patient()
				last = r.Seq
			}
			count = len(ps)
			return s.writeMatchKeys(ctx, tx, ps)
		})
		if err != nil {
			return n, err
		}
		n += count
		if count < backfillBatch {
			break
		}
		after = last
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE patient_match_keys_state SET version = ?`), matchKeysVersion); err != nil {
		return n, db.Classify(err)
	}
	return n, nil
}
