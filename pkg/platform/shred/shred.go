// Package shred is crypto-shredding: text about one subject (a patient) that leaves the
// service's database — in events on Kafka, which nothing can rewrite — is sealed with a data
// key of that subject alone, and erasing the subject destroys its key, so every copy ever
// published becomes unreadable at once (issue 17, "Retention and erasure").
//
// Data keys are random AES-256 keys, kept in the service's own database (table data_keys),
// each wrapped (AES-256-GCM) by the service's key-encryption key, which lives in a file
// outside the database (LoadKEK): a copy of the database alone opens nothing. A sealed value
// is text, "pms-sealed:1:" and base64 of nonce and ciphertext, so it fits the string fields
// of the published schemas unchanged; its additional data binds it to its subject and field,
// so a sealed name cannot be passed off as another patient's or as an e-mail.
package shred

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/privfile"
)

// Prefix starts every sealed value.
const Prefix = "pms-sealed:1:"

// KeySize is the size of data keys and of the key-encryption key, in bytes (AES-256).
const KeySize = 32

// ErrShredded is Open's answer for a subject whose key was destroyed (or never existed): the
// value can never be read again.
var ErrShredded = errors.New("shred: the subject's data key is destroyed")

// Keys are the data keys of one service's subjects, in its database.
type Keys struct {
	d   *db.DB
	kek cipher.AEAD
}

// New returns the key store of database d (migrated with the data_keys table), wrapping keys
// with kek (KeySize bytes).
func New(d *db.DB, kek []byte) (*Keys, error) {
	a, err := newAEAD(kek)
	if err != nil {
		return nil, fmt.Errorf("shred: key-encryption key: %w", err)
	}
	return &Keys{d: d, kek: a}, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("want %d bytes, have %d", KeySize, len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Sealer seals and opens the values of one subject.
type Sealer struct {
	subject string
	aead    cipher.AEAD
}

// ForWrite returns subject's sealer within tx, creating its data key in tx when it has none,
// so the key commits (or not) with the change that first needed it.
func (k *Keys) ForWrite(ctx context.Context, tx *sqlx.Tx, subject string) (*Sealer, error) {
	s, err := k.load(ctx, tx, subject)
	if !errors.Is(err, ErrShredded) {
		return s, err
	}
	return k.ForNew(ctx, tx, subject)
}

// ForNew creates the data key of a subject that has none yet (a record created in tx, under
// an id nobody has used) without looking for one first: one statement fewer than ForWrite
// on the create path. A subject that has a key after all makes the insert fail (the
// subject is the key's primary key), never replaces it.
func (k *Keys) ForNew(ctx context.Context, tx *sqlx.Tx, subject string) (*Sealer, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	wrapped := k.wrap(subject, key)
	if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO data_keys (subject, wrapped, created_at) VALUES (?, ?, ?)`),
		subject, wrapped, k.d.Time(time.Now())); err != nil {
		return nil, db.Classify(err)
	}
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Sealer{subject: subject, aead: a}, nil
}

// Check opens one stored data key, if any: a service started with a key-encryption key that
// is not the one its database's keys were wrapped with (a database restored into a folder
// without its key file) stops at once with a clear error, instead of failing every change
// of an existing subject later.
func (k *Keys) Check(ctx context.Context) error {
	var subject string
	err := k.d.GetContext(ctx, &subject, `SELECT subject FROM data_keys LIMIT 1`)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return db.Classify(err)
	}
	if _, err := k.ForRead(ctx, subject); err != nil {
		return fmt.Errorf("%w: this database's data keys were wrapped with another key-encryption key; restore the key file that goes with it", err)
	}
	return nil
}

// ForRead returns subject's sealer, or ErrShredded when its key is gone.
func (k *Keys) ForRead(ctx context.Context, subject string) (*Sealer, error) {
	return k.load(ctx, k.d, subject)
}

func (k *Keys) load(ctx context.Context, q sqlx.QueryerContext, subject string) (*Sealer, error) {
	var wrapped []byte
	err := sqlx.GetContext(ctx, q, &wrapped, k.d.Rebind(`SELECT wrapped FROM data_keys WHERE subject = ?`), subject)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrShredded
	}
	if err != nil {
		return nil, db.Classify(err)
	}
	bad := errors.New("shred: the data key of a subject does not open with this key-encryption key")
	if len(wrapped) < k.kek.NonceSize() {
		return nil, bad
	}
	key, err := k.kek.Open(nil, wrapped[:k.kek.NonceSize()], wrapped[k.kek.NonceSize():], []byte("data-key/"+subject))
	if err != nil {
		return nil, bad
	}
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Sealer{subject: subject, aead: a}, nil
}

func (k *Keys) wrap(subject string, key []byte) []byte {
	nonce := make([]byte, k.kek.NonceSize(), k.kek.NonceSize()+KeySize+k.kek.Overhead())
	_, _ = rand.Read(nonce)
	return k.kek.Seal(nonce, nonce, key, []byte("data-key/"+subject))
}

// Destroy deletes subject's data key within tx: once tx commits, every value sealed for
// subject, wherever it was copied, is unreadable for good.
func (k *Keys) Destroy(ctx context.Context, tx *sqlx.Tx, subject string) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM data_keys WHERE subject = ?`), subject)
	return db.Classify(err)
}

// Seal returns plaintext sealed as field of the sealer's subject. The empty string stays
// empty: an absent value discloses nothing.
func (s *Sealer) Seal(field, plaintext string) string {
	if plaintext == "" {
		return ""
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	ct := s.aead.Seal(nonce, nonce, []byte(plaintext), s.aad(field))
	return Prefix + base64.RawStdEncoding.EncodeToString(ct)
}

// Open returns the plaintext of a value Seal made for field; "" stays "".
func (s *Sealer) Open(field, sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	rest, ok := strings.CutPrefix(sealed, Prefix)
	if !ok {
		return "", fmt.Errorf("shred: %s is not a sealed value", field)
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", fmt.Errorf("shred: %s is not a sealed value", field)
	}
	pt, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], s.aad(field))
	if err != nil {
		return "", fmt.Errorf("shred: %s does not open for this subject", field)
	}
	return string(pt), nil
}

func (s *Sealer) aad(field string) []byte { return []byte(s.subject + "/" + field) }

// IsSealed reports whether v is a sealed value.
func IsSealed(v string) bool { return strings.HasPrefix(v, Prefix) }

// LoadKEK reads the key-encryption key (KeySize bytes, hex) from path, creating it (mode
// 0600) on first start. Keep it out of the database's backups' reach: with it and a database
// copy, every key not yet destroyed opens.
func LoadKEK(path string) ([]byte, error) {
	key, _, err := privfile.Key(path, KeySize, privfile.Hex)
	if errors.Is(err, privfile.ErrBadKey) {
		return nil, fmt.Errorf("data key-encryption key %s: want %d hex-encoded bytes", path, KeySize)
	}
	if err != nil {
		return nil, fmt.Errorf("data key-encryption key: %w", err)
	}
	return key, nil
}
