package billing

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/outbox"
)

// AuditTable is the billing service's audit log table.
const AuditTable = "audit_log"

// Store keeps accounts, invoices with their lines and payments, idempotency keys and the
// audit log in the service's own database (PostgreSQL or SQLite, one SQL for both). Every
// change is one transaction holding the invoice row's lock, so a payment and the amounts it
// changes never disagree, and two payments cannot both take the last of what is due.
type Store struct {
	db     *db.DB
	events *outbox.Outbox
	// forUpdate locks the row being changed on PostgreSQL; SQLite's write transaction
	// (BEGIN IMMEDIATE) already excludes other writers.
	forUpdate string
}

// NewStore returns a Store over a migrated database.
func NewStore(d *db.DB) *Store {
	s := &Store{db: d, events: outbox.New(d, outbox.Options{})}
	if d.Dialect == db.Postgres {
		s.forUpdate = " FOR UPDATE"
	}
	return s
}

// DB returns the underlying database, for readiness checks.
func (s *Store) DB() *db.DB { return s.db }

// Outbox returns the outbox every change writes its BillingEvents to, in the change's own
// transaction; the service's relay publishes it, and the audit writer adds its entries to it.
func (s *Store) Outbox() *outbox.Outbox { return s.events }

// inTx runs fn in a transaction and, once it committed, wakes the outbox relay. The change's
// audit entry, when ctx carries one (audit.WithPending), is recorded in the same transaction.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	if err := audit.InTx(ctx, s.db, fn); err != nil {
		return err
	}
	s.events.Wake()
	return nil
}

// querier is what reads need: the database or a transaction.
type querier interface {
	sqlx.QueryerContext
	Rebind(string) string
}

// changeMeta says who made a change and when.
type changeMeta struct {
	At        time.Time
	Actor     string
	Role      string
	RequestID string
}

// IdempotencyTable keeps the idempotency keys of creates (pruned after the retention).
const IdempotencyTable = "idempotency_keys"

// keys is where a request's Idempotency-Key is kept with the response it got, stored in the
// transaction that made it.
var keys = idempotency.Table{Name: IdempotencyTable, Result: "response"}

type accountRow struct {
	ID        string       `db:"id"`
	PatientID string       `db:"patient_id"`
	Status    string       `db:"status"`
	CreatedAt db.Timestamp `db:"created_at"`
}

func (r accountRow) account() Account {
	return Account{ID: r.ID, PatientID: r.PatientID, Status: r.Status, CreatedAt: r.CreatedAt.Time}
}

const accountColumns = `id, patient_id, status, created_at`

// createAccount inserts a unless the patient already has an account, with its
// BILLING_ACCOUNT_CREATED event, and returns the patient's account either way, and whether
// this call created it. Concurrent calls for one patient make one account: the unique
// patient_id decides, and the loser reads the winner's. With an eventID (a patient event
// being applied) the id is recorded as processed in the same transaction, and an event
// already processed changes nothing.
func (s *Store) createAccount(ctx context.Context, a Account, m changeMeta, eventID string) (Account, bool, error) {
	var created bool
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if eventID != "" {
			// With the offset of the event's message: the consumer resumes from it.
			first, err := outbox.MarkApplied(ctx, tx, s.db, ConsumerPatientEvents, eventID)
			if err != nil {
				return err
			}
			if !first {
				audit.NotChanged(ctx) // a redelivery: nothing opened, nothing to audit
				return nil
			}
		}
		n, err := db.Affected(tx.ExecContext(ctx, tx.Rebind(`INSERT INTO accounts (id, patient_id, status, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (patient_id) DO NOTHING`), a.ID, a.PatientID, a.Status, s.db.Time(a.CreatedAt)))
		if err != nil {
			return err
		}
		if n != 1 {
			if eventID != "" {
				// The patient service's call opened it first (or an earlier event did): the
				// event is applied (recorded above) and opens nothing, so it records no
				// audit entry of its own (issue 20 item 4: one entry per account opened).
				audit.NotChanged(ctx)
			}
			return nil
		}
		created = true
		msg, err := accountEvent(a, m)
		if err != nil {
			return err
		}
		return s.events.Add(ctx, tx, msg)
	})
	if err != nil {
		return Account{}, false, err
	}
	accounts, err := s.accountsByPatient(ctx, a.PatientID)
	if err != nil {
		return Account{}, false, err
	}
	if len(accounts) != 1 {
		if eventID != "" && !created {
			// An event applied before, whose account is gone: nothing to return.
			return Account{}, false, ErrNoAccount
		}
		return Account{}, false, errs.Wrap(errs.Internal, "internal error", errors.New("billing: account vanished after insert"))
	}
	return accounts[0], created, nil
}

// getAccount returns account id or ErrAccountNotFound.
func (s *Store) getAccount(ctx context.Context, id string) (Account, error) {
	var r accountRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+accountColumns+` FROM accounts WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, ErrAccountNotFound
	}
	if err != nil {
		return Account{}, db.Classify(err)
	}
	return r.account(), nil
}

// accountsByPatient returns the patient's accounts: none or one.
func (s *Store) accountsByPatient(ctx context.Context, patientID string) ([]Account, error) {
	var rows []accountRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+accountColumns+` FROM accounts WHERE patient_id = ?`), patientID); err != nil {
		return nil, db.Classify(err)
	}
	out := make([]Account, len(rows))
	for i, r := range rows {
		out[i] = r.account()
	}
	return out, nil
}

const invoiceColumns = `seq, id, patient_id, account_id, currency, status, due_date, subtotal, amount_paid, version, created_at, updated_at`

type invoiceRow struct {
	Seq        int64        `db:"seq"`
	ID         string       `db:"id"`
	PatientID  string       `db:"patient_id"`
	AccountID  string       `db:"account_id"`
	Currency   string       `db:"currency"`
	Status     string       `db:"status"`
	DueDate    string       `db:"due_date"`
	Subtotal   int64        `db:"subtotal"`
	AmountPaid int64        `db:"amount_paid"`
	Version    int64        `db:"version"`
	CreatedAt  db.Timestamp `db:"created_at"`
	UpdatedAt  db.Timestamp `db:"updated_at"`
}

func (r invoiceRow) invoice() Invoice {
	inv := Invoice{
		ID: r.ID, PatientID: r.PatientID, AccountID: r.AccountID, Currency: r.Currency,
		Status: Status(r.Status), DueDate: r.DueDate, Subtotal: r.Subtotal, AmountPaid: r.AmountPaid,
		Version: r.Version, CreatedAt: r.CreatedAt.Time, UpdatedAt: r.UpdatedAt.Time,
		Lines: []Line{}, Payments: []Payment{},
	}
	inv.AmountDue = amountDue(inv.Status, inv.Subtotal, inv.AmountPaid)
	return inv
}

// amountDue is what is still owed: nothing on a void invoice.
func amountDue(st Status, subtotal, paid int64) int64 {
	if st == StatusVoid {
		return 0
	}
	return subtotal - paid
}

// createInvoice writes a new draft invoice for the patient's account with its lines and,
// when given, its idempotency key and the response it got, in one transaction. The key is
// inserted first, so a concurrent request with the same key waits for this one and then sees
// the key taken (idempotency.ErrTaken) instead of making a second invoice.
func (s *Store) createInvoice(ctx context.Context, inv Invoice, m changeMeta, idem *idempotency.Key) (Invoice, error) {
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := keys.Claim(ctx, tx, s.db, idem, "", m.At); err != nil {
			return err
		}
		var accountID string
		err := tx.GetContext(ctx, &accountID, tx.Rebind(`SELECT id FROM accounts WHERE patient_id = ?`), inv.PatientID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoAccount
		}
		if err != nil {
			return db.Classify(err)
		}
		inv.AccountID = accountID
		var seq int64
		if err := tx.QueryRowxContext(ctx, tx.Rebind(`INSERT INTO invoices (id, patient_id, account_id, currency, status, due_date, subtotal, amount_paid, version, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`),
			inv.ID, inv.PatientID, inv.AccountID, inv.Currency, string(inv.Status), inv.DueDate, inv.Subtotal, inv.AmountPaid,
			inv.Version, s.db.Time(inv.CreatedAt), s.db.Time(inv.UpdatedAt)).Scan(&seq); err != nil {
			return db.Classify(err)
		}
		// The invoice's number is never handed out again, even after a restore (seqmark).
		if err := s.db.Issued("invoices", seq); err != nil {
			return err
		}
		var (
			values []string
			args   []any
		)
		for i, l := range inv.Lines {
			values = append(values, "(?, ?, ?, ?, ?, ?)")
			args = append(args, inv.ID, i, l.Description, l.Quantity, l.UnitAmount, l.Amount)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO invoice_lines (invoice_id, line_no, description, quantity, unit_amount, amount) VALUES `+
			strings.Join(values, ", ")), args...); err != nil {
			return db.Classify(err)
		}
		msg, err := invoiceEvent(EventInvoiceCreated, inv, "", nil, m)
		if err != nil {
			return err
		}
		if err := s.events.Add(ctx, tx, msg); err != nil {
			return err
		}
		return s.storeResponse(ctx, tx, idem, inv)
	})
	if err != nil {
		return Invoice{}, err
	}
	return inv, nil
}

// storeResponse records the response a keyed request got (claimed with an empty one
// earlier in the same transaction, so no one ever sees it empty).
func (s *Store) storeResponse(ctx context.Context, tx *sqlx.Tx, idem *idempotency.Key, inv Invoice) error {
	if idem == nil {
		return nil
	}
	body, err := encodeResponse(inv)
	if err != nil {
		return err
	}
	return keys.Fill(ctx, tx, idem, body)
}

// getInvoice returns invoice id with its lines and payments, or ErrInvoiceNotFound.
func (s *Store) getInvoice(ctx context.Context, id string) (Invoice, error) {
	return s.loadInvoice(ctx, s.db, id, "")
}

// loadInvoice reads one invoice through q, with suffix appended to its SELECT (a row lock).
func (s *Store) loadInvoice(ctx context.Context, q querier, id, suffix string) (Invoice, error) {
	var r invoiceRow
	err := sqlx.GetContext(ctx, q, &r, q.Rebind(`SELECT `+invoiceColumns+` FROM invoices WHERE id = ?`+suffix), id)
	if errors.Is(err, sql.ErrNoRows) {
		return Invoice{}, ErrInvoiceNotFound
	}
	if err != nil {
		return Invoice{}, db.Classify(err)
	}
	invs := []Invoice{r.invoice()}
	if err := s.loadDetails(ctx, q, invs); err != nil {
		return Invoice{}, err
	}
	return invs[0], nil
}

type lineRow struct {
	InvoiceID   string `db:"invoice_id"`
	Description string `db:"description"`
	Quantity    int64  `db:"quantity"`
	UnitAmount  int64  `db:"unit_amount"`
	Amount      int64  `db:"amount"`
}

type paymentRow struct {
	InvoiceID string       `db:"invoice_id"`
	ID        string       `db:"id"`
	Amount    int64        `db:"amount"`
	Method    string       `db:"method"`
	At        db.Timestamp `db:"at"`
}

// detailRead is one of loadDetails' reads: the columns of table's rows for some invoices, in
// order.
type detailRead struct{ columns, table, order string }

// lineRead and paymentRead are what loadDetails reads of an invoice's lines and payments.
var (
	lineRead    = detailRead{"invoice_id, description, quantity, unit_amount, amount", "invoice_lines", "invoice_id, line_no"}
	paymentRead = detailRead{"invoice_id, id, amount, method, at", "payments", "seq"}
)

// loadDetails fills the lines and payments of invs, in order, with one query each.
func (s *Store) loadDetails(ctx context.Context, q querier, invs []Invoice) error {
	if len(invs) == 0 {
		return nil
	}
	ids := make([]string, len(invs))
	index := make(map[string]int, len(invs))
	for i, inv := range invs {
		ids[i] = inv.ID
		index[inv.ID] = i
	}
	var lines []lineRow
	if err := s.selectByInvoice(ctx, q, &lines, lineRead, ids); err != nil {
		return err
	}
	for _, l := range lines {
		inv := &invs[index[l.InvoiceID]]
		inv.Lines = append(inv.Lines, Line{Description: l.Description, Quantity: l.Quantity, UnitAmount: l.UnitAmount, Amount: l.Amount})
	}
	var pays []paymentRow
	if err := s.selectByInvoice(ctx, q, &pays, paymentRead, ids); err != nil {
		return err
	}
	for _, p := range pays {
		inv := &invs[index[p.InvoiceID]]
		inv.Payments = append(inv.Payments, Payment{ID: p.ID, Amount: p.Amount, Method: p.Method, At: p.At.Time})
	}
	return nil
}

// selectByInvoice reads r for the invoices ids into dest.
func (s *Store) selectByInvoice(ctx context.Context, q querier, dest any, r detailRead, ids []string) error {
	query, args, err := s.byInvoiceQuery(r, ids)
	if err != nil {
		return err
	}
	return db.Classify(sqlx.SelectContext(ctx, q, dest, q.Rebind(query), args...))
}

// byInvoiceQuery is selectByInvoice's statement and arguments. On PostgreSQL each id is
// looked up on its own, through the index that leads with invoice_id, whatever the
// statistics say, so a page costs its invoices and not the tables: written as an IN list, a
// page of 20 at a thousand invoices was planned as sequential scans of both tables, with
// statistics or without (TestDetailsPlanWithoutStatistics), and the eighteenth session's
// soak measured these reads at 6-10 ms a call after 30 minutes (issue 20 item 7; not
// reproduced since). OFFSET 0 keeps the lateral subquery from being flattened into a join
// the planner may hash.
func (s *Store) byInvoiceQuery(r detailRead, ids []string) (string, []any, error) {
	if s.db.Dialect == db.Postgres {
		return `SELECT ` + prefixed("r.", r.columns) + ` FROM unnest(?::uuid[]) AS k(id) CROSS JOIN LATERAL
			(SELECT * FROM ` + r.table + ` WHERE invoice_id = k.id OFFSET 0) AS r ORDER BY ` + prefixed("r.", r.order), []any{ids}, nil
	}
	query, args, err := sqlx.In(`SELECT `+r.columns+` FROM `+r.table+` WHERE invoice_id IN (?) ORDER BY `+r.order, ids)
	if err != nil {
		return "", nil, errs.Wrap(errs.Internal, "internal error", err)
	}
	return query, args, nil
}

// prefixed is the comma-separated list of columns, each with prefix.
func prefixed(prefix, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// change locks invoice id, lets edit decide its next state (and a payment to record, or
// nil), and writes both with the new version in one transaction, with idem's key and the
// response when given. edit sees the invoice as committed, lines and payments included.
func (s *Store) change(ctx context.Context, id string, m changeMeta, idem *idempotency.Key,
	edit func(cur Invoice) (next Invoice, pay *Payment, err error)) (Invoice, error) {
	var out Invoice
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := keys.Claim(ctx, tx, s.db, idem, "", m.At); err != nil {
			return err
		}
		cur, err := s.loadInvoice(ctx, tx, id, s.forUpdate)
		if err != nil {
			return err
		}
		next, pay, err := edit(cur)
		if err != nil {
			return err
		}
		if pay != nil {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO payments (id, invoice_id, amount, method, at, actor, request_id) VALUES (?, ?, ?, ?, ?, ?, ?)`),
				pay.ID, id, pay.Amount, pay.Method, s.db.Time(pay.At), m.Actor, m.RequestID); err != nil {
				return db.Classify(err)
			}
			next.Payments = append(next.Payments, *pay)
		}
		next.Version = cur.Version + 1
		next.UpdatedAt = m.At
		next.AmountDue = amountDue(next.Status, next.Subtotal, next.AmountPaid)
		n, err := db.Affected(tx.ExecContext(ctx, tx.Rebind(`UPDATE invoices SET status = ?, amount_paid = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?`),
			string(next.Status), next.AmountPaid, next.Version, s.db.Time(m.At), id, cur.Version))
		if err != nil {
			return err
		}
		if n != 1 {
			// The row lock makes this unreachable; refuse rather than write over a change.
			return errs.New(errs.Conflict, "the invoice was changed concurrently; retry")
		}
		msgs, err := invoiceChangeEvents(cur, next, pay, m)
		if err != nil {
			return err
		}
		if err := s.events.Add(ctx, tx, msgs...); err != nil {
			return err
		}
		out = next
		return s.storeResponse(ctx, tx, idem, next)
	})
	return out, err
}

// listInvoices returns up to limit invoices matching q after the keyset position afterSeq,
// oldest first, with their lines and payments, the last position and whether more follow.
func (s *Store) listInvoices(ctx context.Context, q InvoiceQuery, afterSeq int64, limit int) ([]Invoice, int64, bool, error) {
	where := []string{"seq > ?"}
	args := []any{afterSeq}
	if q.PatientID != "" {
		where, args = append(where, "patient_id = ?"), append(args, q.PatientID)
	}
	if q.Status != "" {
		where, args = append(where, "status = ?"), append(args, q.Status)
	}
	args = append(args, limit+1)
	var rows []invoiceRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+invoiceColumns+` FROM invoices WHERE `+strings.Join(where, " AND ")+` ORDER BY seq LIMIT ?`), args...); err != nil {
		return nil, 0, false, db.Classify(err)
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	out := make([]Invoice, len(rows))
	var last int64
	for i, r := range rows {
		out[i] = r.invoice()
		last = r.Seq
	}
	if err := s.loadDetails(ctx, s.db, out); err != nil {
		return nil, 0, false, err
	}
	return out, last, more, nil
}

// encodePageToken and decodePageToken make the keyset position opaque to clients.
func encodePageToken(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("i1." + strconv.FormatInt(seq, 10)))
}

func decodePageToken(tok string) (int64, bool) {
	if len(tok) > 64 {
		return 0, false
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), "i1.") {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b[3:]), 10, 64)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}
