package auth

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
)

// Purposes of a login challenge (table login_challenges).
const (
	// challengeMFA completes a login with a TOTP or recovery code (POST /login/mfa).
	challengeMFA = "mfa"
	// challengeEnrol lets a user whose role requires MFA, and who has none, enrol and
	// confirm a factor without a token (POST /login/mfa/enrol, /login/mfa/confirm).
	challengeEnrol = "enrol"
)

// PurposeChange is the purpose of the set-password token a login with a password that must
// be changed (the generated bootstrap admin's) is answered with.
const PurposeChange = "change"

// loginChallenge is a login challenge as stored: its SHA-256 only.
type loginChallenge struct {
	hash, userID, purpose string
	expires, usedAt       time.Time
}

func (c loginChallenge) usable(purpose string, now time.Time) bool {
	return c.purpose == purpose && c.usedAt.IsZero() && now.Before(c.expires)
}

type loginChallengeRow struct {
	UserID    string       `db:"user_id"`
	Purpose   string       `db:"purpose"`
	ExpiresAt db.Timestamp `db:"expires_at"`
	UsedAt    db.Timestamp `db:"used_at"`
}

// totpFactor is a user's TOTP factor as stored: the secret sealed, pending until confirmed.
type totpFactor struct {
	sealed    string
	confirmed bool
	lastStep  int64
}

type totpRow struct {
	Sealed      string       `db:"secret_sealed"`
	ConfirmedAt db.Timestamp `db:"confirmed_at"`
	LastStep    int64        `db:"last_step"`
}

// loginState returns what a login with user id's right password still needs: a password
// change, and whether a confirmed TOTP factor is on.
func (s *Store) loginState(ctx context.Context, id string) (mustChange, mfaOn bool, err error) {
	if err := s.db.GetContext(ctx, &mustChange, s.db.Rebind(`SELECT must_change_password FROM users WHERE id = ?`), id); err != nil {
		return false, false, db.Classify(err)
	}
	f, found, err := s.totpOf(ctx, s.db, id, "")
	return mustChange, found && f.confirmed, err
}

// requirePasswordChange marks user id's password as one that must be changed before a login
// succeeds (the generated bootstrap password).
func (s *Store) requirePasswordChange(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE users SET must_change_password = ? WHERE id = ?`), true, id)
	return db.Classify(err)
}

// insertSetPasswordToken stores set-password token t (its hash) for its user.
func (s *Store) insertSetPasswordToken(ctx context.Context, t setPasswordToken) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO set_password_tokens (token_hash, user_id, purpose, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`),
		t.hash, t.userID, t.purpose, s.db.Time(t.created), s.db.Time(t.expires))
	return db.Classify(err)
}

// insertChallenge stores a login challenge (its hash) for userID.
func (s *Store) insertChallenge(ctx context.Context, hash, userID, purpose string, now, expires time.Time) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO login_challenges (challenge_hash, user_id, purpose, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`),
		hash, userID, purpose, s.db.Time(now), s.db.Time(expires))
	return db.Classify(err)
}

// challengeOf returns the challenge hashed hash; found is false for an unknown one.
func (s *Store) challengeOf(ctx context.Context, q sqlx.QueryerContext, hash, lock string) (c loginChallenge, found bool, err error) {
	var r loginChallengeRow
	err = sqlx.GetContext(ctx, q, &r, s.db.Rebind(`SELECT user_id, purpose, expires_at, used_at FROM login_challenges WHERE challenge_hash = ?`+lock), hash)
	if errors.Is(err, sql.ErrNoRows) {
		return loginChallenge{}, false, nil
	}
	if err != nil {
		return loginChallenge{}, false, db.Classify(err)
	}
	return loginChallenge{hash: hash, userID: r.UserID, purpose: r.Purpose, expires: r.ExpiresAt.Time, usedAt: r.UsedAt.Time}, true, nil
}

// totpOf returns user id's TOTP factor; found is false when it has none.
func (s *Store) totpOf(ctx context.Context, q sqlx.QueryerContext, id, lock string) (f totpFactor, found bool, err error) {
	var r totpRow
	err = sqlx.GetContext(ctx, q, &r, s.db.Rebind(`SELECT secret_sealed, confirmed_at, last_step FROM mfa_totp WHERE user_id = ?`+lock), id)
	if errors.Is(err, sql.ErrNoRows) {
		return totpFactor{}, false, nil
	}
	if err != nil {
		return totpFactor{}, false, db.Classify(err)
	}
	return totpFactor{sealed: r.Sealed, confirmed: !r.ConfirmedAt.IsZero(), lastStep: r.LastStep}, true, nil
}

// mfaResult is what a second-factor transaction came to.
type mfaResult int

const (
	mfaOK           mfaResult = iota
	mfaBadChallenge           // unknown, used, expired, another purpose or another user's
	mfaBadCode                // the code or recovery code does not match (or was used)
	mfaNotEnrolled            // no factor in the state the call needs
	mfaEnabled                // a confirmed factor is already on
)

// claimChallenge locks challenge hash inside tx and checks it is usable for purpose by
// userID; it is marked used when the transaction commits with use.
func (s *Store) claimChallenge(ctx context.Context, tx *sqlx.Tx, hash, userID, purpose string, now time.Time) (bool, error) {
	c, found, err := s.challengeOf(ctx, tx, hash, s.forUpdate)
	if err != nil || !found || !c.usable(purpose, now) || c.userID != userID {
		return false, err
	}
	_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE login_challenges SET used_at = ? WHERE challenge_hash = ?`), s.db.Time(now), hash)
	return err == nil, db.Classify(err)
}

// saveEnrolment stores a pending TOTP factor (sealed secret) for user id, replacing a
// pending one; a confirmed factor is left alone (mfaEnabled). With challengeHash, the enrol
// challenge must be usable by the user (it is not used up: the confirmation uses it).
func (s *Store) saveEnrolment(ctx context.Context, id, sealed, challengeHash string, now time.Time) (res mfaResult, err error) {
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		res = mfaOK
		if challengeHash != "" {
			c, found, err := s.challengeOf(ctx, tx, challengeHash, s.forUpdate)
			if err != nil {
				return err
			}
			if !found || !c.usable(challengeEnrol, now) || c.userID != id {
				res = mfaBadChallenge
				audit.NotChanged(ctx)
				return nil
			}
		}
		f, found, err := s.totpOf(ctx, tx, id, s.forUpdate)
		if err != nil {
			return err
		}
		if found && f.confirmed {
			res = mfaEnabled
			audit.NotChanged(ctx)
			return nil
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM mfa_totp WHERE user_id = ?`), id); err != nil {
			return db.Classify(err)
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO mfa_totp (user_id, secret_sealed, created_at, last_step) VALUES (?, ?, ?, 0)`),
			id, sealed, s.db.Time(now))
		return db.Classify(err)
	})
	return res, err
}

// codeCheck verifies a TOTP code against a factor: the step it was accepted for, or false.
type codeCheck func(f totpFactor) (step int64, ok bool)

// confirmTOTP confirms user id's pending factor when check accepts its first code, in one
// transaction with the factor (and, with challengeHash, the enrol challenge, which it uses
// up) locked: the factor is marked confirmed at the code's step, recoveryHashes replace
// every earlier recovery code of the user, and every session of the user but keepSession
// (the confirming one, when known) ends: they were begun with the password alone.
func (s *Store) confirmTOTP(ctx context.Context, id, challengeHash, keepSession string, check codeCheck, recoveryHashes []string, now time.Time) (res mfaResult, err error) {
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		res = mfaOK
		if challengeHash != "" {
			ok, err := s.claimChallenge(ctx, tx, challengeHash, id, challengeEnrol, now)
			if err != nil {
				return err
			}
			if !ok {
				res = mfaBadChallenge
				return errRollback
			}
		}
		f, found, err := s.totpOf(ctx, tx, id, s.forUpdate)
		if err != nil {
			return err
		}
		switch {
		case !found:
			res = mfaNotEnrolled
			return errRollback
		case f.confirmed:
			res = mfaEnabled
			return errRollback
		}
		step, ok := check(f)
		if !ok {
			res = mfaBadCode
			return errRollback
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE mfa_totp SET confirmed_at = ?, last_step = ? WHERE user_id = ?`),
			s.db.Time(now), step, id); err != nil {
			return db.Classify(err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM mfa_recovery_codes WHERE user_id = ?`), id); err != nil {
			return db.Classify(err)
		}
		for _, h := range recoveryHashes {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO mfa_recovery_codes (code_hash, user_id, created_at) VALUES (?, ?, ?)`),
				h, id, s.db.Time(now)); err != nil {
				return db.Classify(err)
			}
		}
		return s.revokeUser(ctx, tx, id, ReasonMFAEnabled, keepSession, true, now)
	})
	if errors.Is(err, errRollback) {
		err = nil
	}
	return res, err
}

// errRollback ends a transaction without its changes and without an error for the caller.
var errRollback = errors.New("rollback")

// secondFactor checks user id's second factor in one transaction with the factor (and, with
// challengeHash, the mfa challenge) locked: a recovery code (its hash) is used up, or check
// accepts a TOTP code whose step is then the last used (so it cannot work again). Only when
// it passes is the challenge used up and, with disable, the factor and its recovery codes
// deleted. A wrong code changes nothing: the challenge stays usable until it expires.
func (s *Store) secondFactor(ctx context.Context, id, challengeHash string, check codeCheck, recoveryHash string, disable bool, now time.Time) (res mfaResult, err error) {
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		res = mfaOK
		if challengeHash != "" {
			ok, err := s.claimChallenge(ctx, tx, challengeHash, id, challengeMFA, now)
			if err != nil {
				return err
			}
			if !ok {
				res = mfaBadChallenge
				return errRollback
			}
		}
		f, found, err := s.totpOf(ctx, tx, id, s.forUpdate)
		if err != nil {
			return err
		}
		if !found || !f.confirmed {
			res = mfaNotEnrolled
			return errRollback
		}
		if recoveryHash != "" {
			n, err := db.Affected(tx.ExecContext(ctx, tx.Rebind(`UPDATE mfa_recovery_codes SET used_at = ? WHERE code_hash = ? AND user_id = ? AND used_at IS NULL`),
				s.db.Time(now), recoveryHash, id))
			if err != nil {
				return err
			}
			if n != 1 {
				res = mfaBadCode
				return errRollback
			}
		} else {
			step, ok := check(f)
			if !ok {
				res = mfaBadCode
				return errRollback
			}
			if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE mfa_totp SET last_step = ? WHERE user_id = ?`), step, id); err != nil {
				return db.Classify(err)
			}
		}
		if disable {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM mfa_recovery_codes WHERE user_id = ?`), id); err != nil {
				return db.Classify(err)
			}
			if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM mfa_totp WHERE user_id = ?`), id); err != nil {
				return db.Classify(err)
			}
		}
		return nil
	})
	if errors.Is(err, errRollback) {
		err = nil
	}
	return res, err
}

// pruneChallenges deletes login challenges that expired before cutoff (housekeeping).
func (s *Store) pruneChallenges(ctx context.Context, cutoff time.Time) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM login_challenges WHERE expires_at < ?`), s.db.Time(cutoff))
	return db.Classify(err)
}

// recoveryCodesLeft counts user id's unused recovery codes (tests and the answer to a
// recovery login).
func (s *Store) recoveryCodesLeft(ctx context.Context, id string) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT count(*) FROM mfa_recovery_codes WHERE user_id = ? AND used_at IS NULL`), id)
	return n, db.Classify(err)
}

// attemptTakenBack takes back the attempt a right password counted, without clearing the
// account's earlier failures as attemptSucceeded does: a second step (a code) is still due
// and is throttled on the same counters.
func (s *Store) attemptTakenBack(ctx context.Context, keys []throttleKey, now time.Time) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE login_throttle SET failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END, updated_at = ? WHERE key = ?`),
				s.db.Time(now), k.name); err != nil {
				return db.Classify(err)
			}
		}
		return nil
	})
}
