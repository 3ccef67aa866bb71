package patient

import (
	"context"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
)

// insertPatient inserts new patient p (version 1) with its MRN and returns its registration
// sequence number. On PostgreSQL it takes the number from the identity's sequence first and
// inserts the row with its MRN at once: inserting it without and setting the MRN afterwards
// (as SQLite does) is an UPDATE of an indexed column, so a second row version with an entry
// in every index, three trigram GIN indexes included — most of a create's cost in the
// database (issue 20 item 4, ops/bench/create.sh). Either way the number is reported to the
// high-water mark (seqmark) before the MRN is used, so it is never handed out again, even
// after a restore.
func (s *Store) insertPatient(ctx context.Context, tx *sqlx.Tx, p Patient, m changeMeta) (int64, error) {
	var seq int64
	args := []any{p.ID, p.Name, p.Family, encodeGiven(p.Given), p.Gender, p.Phone, rowIdentifiers(p.Identifiers), p.Email, p.Address, p.DateOfBirth, p.RegisteredDate,
		s.db.Time(m.At), s.db.Time(m.At)}
	if s.db.Dialect == db.Postgres {
		if err := tx.QueryRowxContext(ctx, `SELECT nextval(pg_get_serial_sequence('patients', 'seq'))`).Scan(&seq); err != nil {
			return 0, db.Classify(err)
		}
		if err := s.db.Issued("patients", seq); err != nil {
			return 0, err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO patients (id, name, family, given, gender, phone, identifiers, email, address, date_of_birth, registered_date, version, created_at, updated_at, seq, mrn)
			OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $13, $14, $15)`, append(args, seq, MRN(seq))...)
		return seq, db.Classify(err)
	}
	err := tx.QueryRowxContext(ctx, tx.Rebind(`INSERT INTO patients (id, name, family, given, gender, phone, identifiers, email, address, date_of_birth, registered_date, version, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?) RETURNING seq`), args...).Scan(&seq)
	if err != nil {
		return 0, db.Classify(err)
	}
	if err := s.db.Issued("patients", seq); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE patients SET mrn = ? WHERE seq = ?`), MRN(seq), seq); err != nil {
		return 0, db.Classify(err)
	}
	return seq, nil
}
