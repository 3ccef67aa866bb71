// Package idempotency is the one implementation of "the same request sent again changes
// nothing and gets the first answer" (API.md): the Idempotency-Key of patient's and billing's
// creates, and the stored replies of Kafka commands sent with an idempotency-key. A key is
// scoped to its caller and remembers a fingerprint of the request, so the same key with
// another request is a conflict; a key is claimed inside the transaction of the change it
// guards, so two concurrent requests with one key make one change, and the loser replays
// the winner's answer once it has committed.
package idempotency

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
)

// Key is a request's idempotency key, scoped to its caller, with the fingerprint of the
// request it came with.
type Key struct {
	Scope, Key, RequestHash string
}

// NewKey returns the key of a request (nil without one): scoped to the caller, and hashed
// over the operation and its normalised request, so the same key sent to another operation
// or with another body is a conflict, while a body that differs only in spelling (" x " for
// "x") is the same request.
func NewKey(scope, key, operation string, normalised any) *Key {
	if key == "" {
		return nil
	}
	b, err := json.Marshal(normalised)
	if err != nil {
		// Normalised requests are plain values of strings and integers.
		panic(fmt.Sprintf("idempotency: hashing a request: %v", err))
	}
	return &Key{Scope: scope, Key: key, RequestHash: Hash(operation, b)}
}

// Hash fingerprints a request: the operation and its bytes.
func Hash(operation string, request []byte) string {
	sum := sha256.Sum256(append([]byte(operation+"\x00"), request...))
	return hex.EncodeToString(sum[:])
}

// ErrTaken says a key was claimed by another request that committed first.
var ErrTaken = errors.New("idempotency: key taken")

// Table is where a service keeps its keys: a table with the columns scope, key,
// request_hash, created_at and Result, which holds what a replay answers (the id of the
// record made, or the response itself).
type Table struct {
	Name, Result string
}

// Claim stores k (nil: nothing to do) with result in tx, the transaction of the change it
// guards. A key already stored is ErrTaken: the caller's change must not happen.
func (t Table) Claim(ctx context.Context, tx *sqlx.Tx, d *db.DB, k *Key, result string, at time.Time) error {
	if k == nil {
		return nil
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO `+t.Name+` (scope, key, request_hash, `+t.Result+`, created_at) VALUES (?, ?, ?, ?, ?)`),
		k.Scope, k.Key, k.RequestHash, result, d.Time(at))
	if db.IsUniqueViolation(err, "") {
		return ErrTaken
	}
	return db.Classify(err)
}

// Fill sets the result of k, claimed earlier in the same transaction, once it is known.
func (t Table) Fill(ctx context.Context, tx *sqlx.Tx, k *Key, result string) error {
	if k == nil {
		return nil
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE `+t.Name+` SET `+t.Result+` = ? WHERE scope = ? AND key = ?`), result, k.Scope, k.Key)
	return db.Classify(err)
}

// Lookup returns the result stored under k and whether k is known; a key stored with another
// request is conflict.
func (t Table) Lookup(ctx context.Context, d *db.DB, k *Key, conflict error) (string, bool, error) {
	var row struct {
		Hash   string `db:"request_hash"`
		Result string `db:"result"`
	}
	err := d.GetContext(ctx, &row, d.Rebind(`SELECT request_hash, `+t.Result+` AS result FROM `+t.Name+` WHERE scope = ? AND key = ?`), k.Scope, k.Key)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, db.Classify(err)
	case row.Hash != k.RequestHash:
		return "", true, conflict
	}
	return row.Result, true, nil
}

// Do runs do under k (without a key, just do): a known key replays (replay: the stored
// answer, a conflict, or not known), an unknown one runs do, and when do finds the key taken
// by a request that committed meanwhile, that request's answer is replayed.
func Do[T any](k *Key, replay func() (T, bool, error), do func() (T, error)) (T, error) {
	if k == nil {
		return do()
	}
	if v, ok, err := replay(); ok || err != nil {
		return v, err
	}
	v, err := do()
	if errors.Is(err, ErrTaken) {
		v, ok, err := replay()
		if err == nil && !ok {
			err = errs.New(errs.Unavailable, "the request is being processed; retry")
		}
		return v, err
	}
	return v, err
}
