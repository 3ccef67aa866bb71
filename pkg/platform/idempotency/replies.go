package idempotency

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
)

// Reply is the stored reply of a command sent with an idempotency key: the hash of the
// request it answered, and the status and body sent back.
type Reply struct {
	RequestHash string `db:"request_hash"`
	Status      int    `db:"status"`
	Body        []byte `db:"body"`
}

// Replies stores the replies of Kafka commands sent with an idempotency-key (API.md: "a
// repeat returns the stored reply and changes nothing"), in the command_replies table of the
// service's database.
type Replies struct{ d *db.DB }

// NewReplies returns the reply store of database d.
func NewReplies(d *db.DB) *Replies { return &Replies{d: d} }

// Get returns the reply stored under scope and key, if any.
func (s *Replies) Get(ctx context.Context, scope, key string) (Reply, bool, error) {
	var r Reply
	err := s.d.GetContext(ctx, &r, s.d.Rebind(`SELECT request_hash, status, body FROM command_replies WHERE scope = ? AND key = ?`), scope, key)
	if errors.Is(err, sql.ErrNoRows) {
		return Reply{}, false, nil
	}
	if err != nil {
		return Reply{}, false, db.Classify(err)
	}
	return r, true, nil
}

// Put stores r under scope and key unless a reply is already stored there (the first one
// wins, as a repeat must see the first answer).
func (s *Replies) Put(ctx context.Context, scope, key string, r Reply) error {
	_, err := s.d.ExecContext(ctx, s.d.Rebind(`INSERT INTO command_replies (scope, key, request_hash, status, body, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, key) DO NOTHING`), scope, key, r.RequestHash, r.Status, r.Body, s.d.Time(time.Now()))
	return db.Classify(err)
}

// DeleteMentioning deletes, within tx, every stored reply whose body mentions id (an erased
// patient's: the replies of commands about it), and reports how many.
func DeleteMentioning(ctx context.Context, tx *sqlx.Tx, d *db.DB, id string) (int64, error) {
	cond := `instr(body, CAST(? AS BLOB)) > 0`
	if d.Dialect == db.Postgres {
		cond = `position(convert_to(?, 'UTF8') in body) > 0`
	}
	return db.Affected(tx.ExecContext(ctx, tx.Rebind(`DELETE FROM `+RepliesTable+` WHERE `+cond), id))
}
