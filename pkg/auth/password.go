package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/pms/pms/pkg/platform/errs"
)

// Hasher hashes and checks passwords. Both calls are deliberately expensive; they take a
// context because a caller may wait for a free slot (see Argon2id.Concurrency).
type Hasher interface {
	// Hash returns the encoded hash of password, with its parameters and salt.
	Hash(ctx context.Context, password string) (string, error)
	// Verify reports whether password matches encoded. It takes the same time whether it
	// matches or not.
	Verify(ctx context.Context, encoded, password string) (bool, error)
}

// Argon2idParams are argon2id's cost parameters.
type Argon2idParams struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	KeyLen  uint32
	SaltLen uint32
}

// DefaultArgon2id is the cost API.md and OWASP ask for: 19 MiB, two passes, one lane.
var DefaultArgon2id = Argon2idParams{Memory: 19 * 1024, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}

// Argon2id is the password Hasher: argon2id with Params, encoded in the PHC string format
// ($argon2id$v=19$m=19456,t=2,p=1$salt$hash), so a stored hash carries its own parameters
// and stronger ones can be introduced without breaking old hashes.
type Argon2id struct {
	Params Argon2idParams
	// sem bounds the hashes computed at once: each holds Params.Memory for its duration, so
	// a burst of logins must queue rather than take the process's memory with it.
	sem chan struct{}
}

// NewArgon2id returns the hasher with p (zero means DefaultArgon2id), computing at most
// concurrency hashes at once (≤ 0 means GOMAXPROCS).
func NewArgon2id(p Argon2idParams, concurrency int) *Argon2id {
	if p == (Argon2idParams{}) {
		p = DefaultArgon2id
	}
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	return &Argon2id{Params: p, sem: make(chan struct{}, concurrency)}
}

func (a *Argon2id) acquire(ctx context.Context) error {
	select {
	case a.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return errs.Wrap(errs.Unavailable, "the server is busy; retry", ctx.Err())
	}
}

func (a *Argon2id) release() { <-a.sem }

// Hash implements Hasher.
func (a *Argon2id) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, a.Params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	if err := a.acquire(ctx); err != nil {
		return "", err
	}
	defer a.release()
	p := a.Params
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// errBadHash says a stored hash is not one this hasher wrote; it is a data problem, never
// the caller's, so it surfaces as internal.
var errBadHash = errors.New("auth: malformed password hash")

// Verify implements Hasher.
func (a *Argon2id) Verify(ctx context.Context, encoded, password string) (bool, error) {
	p, salt, want, err := parseArgon2id(encoded)
	if err != nil {
		return false, err
	}
	if err := a.acquire(ctx); err != nil {
		return false, err
	}
	defer a.release()
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// parseArgon2id reads a PHC argon2id string, refusing parameters no hasher of ours writes
// (so a corrupted row cannot ask for gigabytes of memory).
func parseArgon2id(encoded string) (Argon2idParams, []byte, []byte, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return Argon2idParams{}, nil, nil, errBadHash
	}
	var p Argon2idParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return Argon2idParams{}, nil, nil, errBadHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 || len(key) > 64 ||
		p.Memory < 8 || p.Memory > 1<<20 || p.Time < 1 || p.Time > 16 || p.Threads < 1 || p.Threads > 16 {
		return Argon2idParams{}, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// checkPassword returns why password may not be used for the account email, or "".
func checkPassword(password, email string) string {
	switch {
	case !utf8.ValidString(password) || strings.IndexByte(password, 0) >= 0:
		return "must be valid UTF-8 without NUL characters"
	case utf8.RuneCountInString(password) < MinPasswordLen:
		return fmt.Sprintf("must be at least %d characters", MinPasswordLen)
	case len(password) > MaxPasswordBytes:
		return fmt.Sprintf("must be at most %d bytes", MaxPasswordBytes)
	case strings.TrimSpace(password) == "":
		return "must not be blank"
	case containsEmail(password, email):
		return "must not contain the email address or its name part"
	case isCommonPassword(password):
		return "is too common: it is on the list of common and breached passwords; choose another"
	}
	return ""
}

// GeneratePassword returns a random password of 24 characters (144 bits), for the
// bootstrap admin when none is configured.
func GeneratePassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// containsEmail reports whether password contains email, or its local part (before the
// last @) when that has at least 4 characters, case-insensitively: the first thing an
// attacker who knows the address tries. Shorter local parts ("al") are too common as
// fragments of any password to refuse.
func containsEmail(password, email string) bool {
	if email == "" {
		return false
	}
	p, e := strings.ToLower(password), strings.ToLower(email)
	if strings.Contains(p, e) {
		return true
	}
	local := e
	if i := strings.LastIndexByte(e, '@'); i >= 0 {
		local = e[:i]
	}
	return utf8.RuneCountInString(local) >= 4 && strings.Contains(p, local)
}
