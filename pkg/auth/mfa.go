package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"image/png"
	"strings"
	"time"

	"github.com/go-kit/log/level"
	"github.com/google/uuid"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// TOTP parameters: what authenticator apps and oathtool use by default (RFC 6238).
const (
	totpPeriod     = 30 // seconds a code's time step lasts
	totpDigits     = otp.DigitsSix
	totpSecretSize = 20 // bytes: 160 bits, RFC 4226's recommendation
	// totpSkew is how many steps either side of now a code may be from, for clocks that
	// drift: ±1 step (30 s).
	totpSkew = 1
	// RecoveryCodeCount recovery codes come with each confirmed factor.
	RecoveryCodeCount = 10
	// recoveryCodeChars is a recovery code's length in base32 characters: 80 random bits.
	recoveryCodeChars = 16
	// DefaultChallengeTTL is how long a login challenge (and a password change's
	// set-password token) works.
	DefaultChallengeTTL = 5 * time.Minute
	// DefaultMFAIssuer names the service in authenticator apps (the otpauth issuer).
	DefaultMFAIssuer = "PMS"
)

// EnrolTOTPRequest is POST /mfa/totp: the caller (by its token) enrols a TOTP factor.
type EnrolTOTPRequest struct{}

// TOTPEnrolment is what an enrolment returns, once: the secret (base32) for typing in, the
// otpauth:// URI and a QR code of it (PNG; base64 in JSON) for scanning. The factor is pending
// until a first code confirms it.
type TOTPEnrolment struct {
	Secret     string `json:"secret"`
	OtpauthURI string `json:"otpauthUri"`
	QRPNG      []byte `json:"qrPng"`
}

// ConfirmTOTPRequest is POST /mfa/totp/confirm: the first code of the pending factor.
type ConfirmTOTPRequest struct {
	Code string `json:"code"`
}

// RecoveryCodes are the one-time recovery codes of a newly confirmed factor, shown this
// once (the service keeps their SHA-256 only).
type RecoveryCodes struct {
	RecoveryCodes []string `json:"recoveryCodes"`
}

// DisableTOTPRequest is POST /mfa/totp/disable: a current code or a recovery code.
type DisableTOTPRequest struct {
	Code         string `json:"code,omitempty"`
	RecoveryCode string `json:"recoveryCode,omitempty"`
}

// LoginMFARequest is POST /login/mfa: the challenge of a login answered mfa_required, and a
// TOTP code or a recovery code.
type LoginMFARequest struct {
	Challenge    string `json:"challenge"`
	Code         string `json:"code,omitempty"`
	RecoveryCode string `json:"recoveryCode,omitempty"`
}

// ChallengeEnrolRequest is POST /login/mfa/enrol: the challenge of a login answered
// mfa_required with enrol (the user's role requires MFA and it has none) enrols a factor.
type ChallengeEnrolRequest struct {
	Challenge string `json:"challenge"`
}

// ChallengeConfirmRequest is POST /login/mfa/confirm: the same challenge and the new
// factor's first code.
type ChallengeConfirmRequest struct {
	Challenge string `json:"challenge"`
	Code      string `json:"code"`
}

// MFALogin is what completing a login by confirming a new factor returns: the token pair and
// the factor's recovery codes (shown this once).
type MFALogin struct {
	TokenPair
	RecoveryCodes []string `json:"recoveryCodes"`
}

// The actions of the password lifecycle and of MFA in the audit log. Never a code, a
// secret or a challenge.
const (
	// ActionPasswordChangeRequired: a right password that must be changed first; a change
	// token was issued (success).
	ActionPasswordChangeRequired = "password_change_required"
	// ActionMFARequired: a right password with a factor on; a challenge was issued.
	ActionMFARequired = "mfa_required"
	// ActionMFAEnrolRequired: a right password, a role that requires MFA and no factor; an
	// enrol challenge was issued.
	ActionMFAEnrolRequired = "mfa_enrol_required"
	ActionMFAEnrol         = "mfa_enrol"   // a pending factor was created (success/rejected/denied)
	ActionMFAConfirm       = "mfa_confirm" // its first code confirmed it (success/rejected/denied)
	ActionMFADisable       = "mfa_disable" // the factor was removed with a code (success/denied)
	ActionLoginMFA         = "login_mfa"   // a login completed with a second factor (success/denied)
	// ActionRecoveryCodeUsed: a recovery code was spent (login or disable).
	ActionRecoveryCodeUsed = "recovery_code_used"
)

// MFA errors.
var (
	// ErrBadChallenge is the one answer to a challenge that cannot be used: unknown, used,
	// expired, of another purpose, or its user disabled.
	ErrBadChallenge = errs.New(errs.Unauthenticated, "invalid or expired challenge; log in again")
	// ErrBadCode refuses a TOTP or recovery code that does not match, or was used already
	// (a code works once, a recovery code once).
	ErrBadCode = errs.New(errs.Unauthenticated, "invalid code")
	// ErrMFAEnabled refuses an enrolment while a confirmed factor is on.
	ErrMFAEnabled = errs.New(errs.Conflict, "a second factor is already on; disable it first")
	// ErrMFANotEnrolled refuses a confirmation without a pending factor, or a disable
	// without a factor.
	ErrMFANotEnrolled = errs.New(errs.Conflict, "no second factor in that state: enrol with POST /auth/mfa/totp first")
)

// MFAService is the part of Service that manages TOTP factors and completes logins that
// need a second step.
type MFAService interface {
	// EnrolTOTP creates a pending TOTP factor for the caller's own account (a confirmed one
	// must be disabled first) and returns its secret, once.
	EnrolTOTP(ctx context.Context) (TOTPEnrolment, error)
	// ConfirmTOTP turns the caller's pending factor on with its first code and returns ten
	// one-time recovery codes, once.
	ConfirmTOTP(ctx context.Context, req ConfirmTOTPRequest) (RecoveryCodes, error)
	// DisableTOTP removes the caller's factor, given a current code or a recovery code.
	DisableTOTP(ctx context.Context, req DisableTOTPRequest) error
	// LoginMFA completes a login answered mfa_required with its challenge and a code.
	LoginMFA(ctx context.Context, req LoginMFARequest) (TokenPair, error)
	// LoginEnrolTOTP enrols a factor for the user of an enrol challenge (a login answered
	// mfa_required with enrol), without a token.
	LoginEnrolTOTP(ctx context.Context, req ChallengeEnrolRequest) (TOTPEnrolment, error)
	// LoginConfirmTOTP confirms that factor with its first code and completes the login.
	LoginConfirmTOTP(ctx context.Context, req ChallengeConfirmRequest) (MFALogin, error)
}

// MFAOptions configure second factors. Zero values work.
type MFAOptions struct {
	// Key seals TOTP secrets at rest (32 bytes, OpenMFAKey); empty means a random key for
	// this process's life (tests).
	Key []byte
	// RequireRoles are the roles that must have a factor: a login of such a user without one
	// is answered mfa_required with enrol.
	RequireRoles []string
	// ChallengeTTL is how long a login challenge and a password change's set-password token
	// work; default DefaultChallengeTTL.
	ChallengeTTL time.Duration
	// Issuer names the service in authenticator apps; default DefaultMFAIssuer.
	Issuer string
}

// mfaState is the service's MFA configuration.
type mfaState struct {
	sealer       sealer
	challengeTTL time.Duration
	mfaIssuer    string
	requireMFA   map[string]bool
}

// mfaOptions fills the MFA part of the service from o.
func (s *service) mfaOptions(o MFAOptions) error {
	key := o.Key
	if len(key) == 0 {
		// No key configured (tests, a process issuing no tokens): one for this process's
		// life. cmd always passes the key file's.
		key = make([]byte, mfaKeyLen)
		if _, err := rand.Read(key); err != nil {
			return err
		}
	}
	var err error
	if s.sealer, err = newSealer(key); err != nil {
		return err
	}
	s.challengeTTL = o.ChallengeTTL
	if s.challengeTTL <= 0 {
		s.challengeTTL = DefaultChallengeTTL
	}
	s.mfaIssuer = o.Issuer
	if s.mfaIssuer == "" {
		s.mfaIssuer = DefaultMFAIssuer
	}
	s.requireMFA = map[string]bool{}
	for _, r := range o.RequireRoles {
		if !authz.ValidRole(r) {
			return errs.Newf(errs.InvalidArgument, "auth: require-mfa-roles: unknown role %q", r)
		}
		s.requireMFA[r] = true
	}
	return nil
}

// secondStep is Login's hook after a right password: nil when the login may complete, else
// the 401 with a challenge for the step still due — a password change (the generated
// bootstrap password), a second factor, or enrolling one (a role in --require-mfa-roles).
// The right password does not count as a failure, but does not clear the account's
// failures either: the code that follows is still throttled on the same counter.
func (s *service) secondStep(ctx context.Context, u User, keys []throttleKey, now time.Time) error {
	mustChange, mfaOn, err := s.store.loginState(ctx, u.ID)
	if err != nil {
		return err
	}
	enrol := !mfaOn && s.requireMFA[u.Role]
	if !mustChange && !mfaOn && !enrol {
		return nil
	}
	if err := s.store.attemptTakenBack(ctx, keys, now); err != nil {
		return err
	}
	secret, err := newRefreshToken()
	if err != nil {
		return errs.Wrap(errs.Internal, "internal error", err)
	}
	expires := now.Add(s.challengeTTL)
	ctx = asUser(ctx, u)
	switch {
	case mustChange:
		t := setPasswordToken{hash: hashRefreshToken(secret), userID: u.ID, purpose: PurposeChange, created: now, expires: expires}
		if err := s.store.insertSetPasswordToken(ctx, t); err != nil {
			return err
		}
		if err := s.record(ctx, ActionPasswordChangeRequired, u.ID, audit.OutcomeSuccess); err != nil {
			return err
		}
		return &errs.Error{Kind: errs.PasswordChangeRequired, Challenge: secret,
			Message: "this password must be changed before the first login: set a new one with POST /auth/password/set, the challenge as its token"}
	case mfaOn:
		if err := s.store.insertChallenge(ctx, hashRefreshToken(secret), u.ID, challengeMFA, now, expires); err != nil {
			return err
		}
		if err := s.record(ctx, ActionMFARequired, u.ID, audit.OutcomeSuccess); err != nil {
			return err
		}
		return &errs.Error{Kind: errs.MFARequired, Challenge: secret,
			Message: "a second factor is required: complete the login with POST /auth/login/mfa, the challenge and a code"}
	default:
		if err := s.store.insertChallenge(ctx, hashRefreshToken(secret), u.ID, challengeEnrol, now, expires); err != nil {
			return err
		}
		if err := s.record(ctx, ActionMFAEnrolRequired, u.ID, audit.OutcomeSuccess); err != nil {
			return err
		}
		return &errs.Error{Kind: errs.MFARequired, Challenge: secret, Enrol: true,
			Message: "your role requires a second factor: enrol one with POST /auth/login/mfa/enrol and the challenge, then confirm it with POST /auth/login/mfa/confirm"}
	}
}

// checkCode returns why code cannot be a TOTP code, or "".
func checkCode(code string) string {
	if len(code) != int(totpDigits) {
		return "must be 6 digits"
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return "must be 6 digits"
		}
	}
	return ""
}

// normaliseRecoveryCode returns code as it was issued (upper case base32, without the dashes
// and spaces it is shown and typed with), or "" when it cannot be one.
func normaliseRecoveryCode(code string) string {
	if len(code) > 64 {
		return ""
	}
	c := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
	if len(c) != recoveryCodeChars {
		return ""
	}
	if _, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(c); err != nil {
		return ""
	}
	return c
}

// newRecoveryCodes returns RecoveryCodeCount codes, each 80 random bits in 16 base32
// characters shown as four groups (ABCD-EFGH-IJKL-MNOP), and their hashes. A fast hash
// (SHA-256, as for refresh tokens) is right for 80 random bits: no dictionary helps, and
// brute force of 2^80 is out of reach, while argon2id would cost 19 MiB and 20 ms per code
// tried at each recovery login.
func newRecoveryCodes() (codes, hashes []string, err error) {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for range RecoveryCodeCount {
		b := make([]byte, recoveryCodeChars*5/8)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, err
		}
		c := enc.EncodeToString(b)
		codes = append(codes, c[0:4]+"-"+c[4:8]+"-"+c[8:12]+"-"+c[12:16])
		hashes = append(hashes, hashRefreshToken(c))
	}
	return codes, hashes, nil
}

// codeChecker returns the check of code at now for userID's factor: the code must be that of
// a step within ±totpSkew of now and later than the last step accepted, so a code works
// once and an old one not at all.
func (s *service) codeChecker(userID, code string, now time.Time) codeCheck {
	return func(f totpFactor) (int64, bool) {
		secret, err := s.sealer.open(f.sealed, userID)
		if err != nil {
			return 0, false
		}
		return matchTOTP(secret, code, now, f.lastStep)
	}
}

// matchTOTP finds the step within ±totpSkew of now, later than last, whose code is code.
func matchTOTP(secret, code string, now time.Time, last int64) (int64, bool) {
	cur := now.Unix() / totpPeriod
	for step := cur - totpSkew; step <= cur+totpSkew; step++ {
		if step <= last || step < 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(step), hotp.ValidateOpts{Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true
		}
	}
	return 0, false
}

// principalUser returns the signed-in caller's user, refusing service principals.
func (s *service) principalUser(ctx context.Context) (User, error) {
	p, ok := authz.FromContext(ctx)
	uid, err := parseID(p.Subject)
	if !ok || err != nil {
		return User{}, errs.New(errs.PermissionDenied, "only a signed-in user has a second factor of its own")
	}
	u, err := s.store.userByID(ctx, s.store.db, uid)
	if errors.Is(err, ErrUserNotFound) {
		return User{}, errs.New(errs.Unauthenticated, "a valid access token is required")
	}
	return u, err
}

// challengeUser looks the challenge up (cheaply) and returns its user when it is usable
// for purpose; else ErrBadChallenge.
func (s *service) challengeUser(ctx context.Context, challenge, purpose string, now time.Time) (User, string, error) {
	h := hashRefreshToken(challenge)
	c, found, err := s.store.challengeOf(ctx, s.store.db, h, "")
	if err != nil {
		return User{}, "", err
	}
	if !found || !c.usable(purpose, now) {
		return User{}, "", ErrBadChallenge
	}
	u, err := s.store.userByID(ctx, s.store.db, c.userID)
	if errors.Is(err, ErrUserNotFound) || (err == nil && u.Disabled) {
		return User{}, "", ErrBadChallenge
	}
	return u, h, err
}

// admitCode runs the login throttle for a code about to be checked for u: wrong codes count
// against the account and the address as wrong passwords do.
func (s *service) admitCode(ctx context.Context, u User, now time.Time) ([]throttleKey, error) {
	keys := []throttleKey{{name: accountKey(u.Email), limit: s.throttle.AccountAttempts}}
	if addr := observe.ClientAddr(ctx); addr != "" {
		keys = append(keys, throttleKey{name: addressKey(addr), limit: s.throttle.AddressAttempts})
	}
	d, err := s.store.admitAttempt(ctx, s.throttle, keys, now)
	if err != nil {
		return nil, err
	}
	if d.Retry > 0 {
		if len(d.Locked) > 0 {
			s.recordOutcome(ctx, ActionLockout, u.ID, audit.OutcomeDenied)
		}
		return nil, &errs.Error{Kind: errs.RateLimited, Message: "too many failed attempts; try again later", RetryAfter: d.Retry}
	}
	return keys, nil
}

// factorInput checks a code-or-recovery-code pair: exactly one, well formed. It returns the
// recovery code's hash ("" for a TOTP code).
func factorInput(code, recovery string) (string, error) {
	switch {
	case code == "" && recovery == "":
		return "", errs.Invalid(map[string]string{"code": "a code or a recoveryCode is required"})
	case code != "" && recovery != "":
		return "", errs.Invalid(map[string]string{"recoveryCode": "give a code or a recoveryCode, not both"})
	case code != "":
		if msg := checkCode(code); msg != "" {
			return "", errs.Invalid(map[string]string{"code": msg})
		}
		return "", nil
	}
	c := normaliseRecoveryCode(recovery)
	if c == "" {
		return "", errs.Invalid(map[string]string{"recoveryCode": "must be a recovery code (16 letters and digits, dashes optional)"})
	}
	return hashRefreshToken(c), nil
}

// enrol creates a pending factor for u (with challengeHash, an enrol challenge's).
func (s *service) enrol(ctx context.Context, u User, challengeHash string, now time.Time) (TOTPEnrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.mfaIssuer, AccountName: u.Email, Period: totpPeriod,
		SecretSize: totpSecretSize, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return TOTPEnrolment{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	sealed, err := s.sealer.seal(key.Secret(), u.ID)
	if err != nil {
		return TOTPEnrolment{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return TOTPEnrolment{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	var qr bytes.Buffer
	if err := png.Encode(&qr, img); err != nil {
		return TOTPEnrolment{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	res, err := s.store.saveEnrolment(ctx, u.ID, sealed, challengeHash, now)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	switch res {
	case mfaBadChallenge:
		return TOTPEnrolment{}, ErrBadChallenge
	case mfaEnabled:
		return TOTPEnrolment{}, ErrMFAEnabled
	}
	return TOTPEnrolment{Secret: key.Secret(), OtpauthURI: key.URL(), QRPNG: qr.Bytes()}, nil
}

// EnrolTOTP implements Service: the caller's own account only (the token's subject).
func (s *service) EnrolTOTP(ctx context.Context) (e TOTPEnrolment, err error) {
	u, err := s.principalUser(ctx)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	ctx = audit.WithPending(ctx, ActionMFAEnrol, u.ID) // recorded in the enrolment's transaction
	defer func() { s.recordAfter(ctx, ActionMFAEnrol, u.ID, err) }()
	return s.enrol(ctx, u, "", s.at())
}

// LoginEnrolTOTP implements Service: an enrol challenge enrols its own user, no one else.
func (s *service) LoginEnrolTOTP(ctx context.Context, req ChallengeEnrolRequest) (e TOTPEnrolment, err error) {
	if msg := checkOpaqueToken(req.Challenge); msg != "" {
		return TOTPEnrolment{}, errs.Invalid(map[string]string{"challenge": msg})
	}
	now := s.at()
	u, h, err := s.challengeUser(ctx, req.Challenge, challengeEnrol, now)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	ctx = audit.WithPending(asUser(ctx, u), ActionMFAEnrol, u.ID) // recorded in the enrolment's transaction
	defer func() { s.recordAfter(ctx, ActionMFAEnrol, u.ID, err) }()
	return s.enrol(ctx, u, h, now)
}

// confirm confirms u's pending factor with code (throttled as a password), using up
// challengeHash when given, ends u's sessions but the caller's, and returns the recovery
// codes. The confirmation's transaction records its mfa_confirm entry (audit.WithPending on
// that transaction alone: the throttle's own transactions must not record it); the context
// returned carries it, for the caller's recordAfter.
func (s *service) confirm(ctx context.Context, u User, challengeHash, code string, now time.Time) (context.Context, []string, error) {
	if msg := checkCode(code); msg != "" {
		return ctx, nil, errs.Invalid(map[string]string{"code": msg})
	}
	keys, err := s.admitCode(ctx, u, now)
	if err != nil {
		return ctx, nil, err
	}
	codes, hashes, err := newRecoveryCodes()
	if err != nil {
		return ctx, nil, errs.Wrap(errs.Internal, "internal error", err)
	}
	keep := ""
	if p, ok := authz.FromContext(ctx); ok && challengeHash == "" {
		keep = p.SessionID
	}
	pctx := audit.WithPending(ctx, ActionMFAConfirm, u.ID)
	res, err := s.store.confirmTOTP(pctx, u.ID, challengeHash, keep, s.codeChecker(u.ID, code, now), hashes, now)
	if err != nil {
		return pctx, nil, err
	}
	switch res {
	case mfaBadChallenge:
		return pctx, nil, ErrBadChallenge
	case mfaNotEnrolled:
		return pctx, nil, ErrMFANotEnrolled
	case mfaEnabled:
		return pctx, nil, ErrMFAEnabled
	case mfaBadCode:
		return pctx, nil, &errs.Error{Kind: errs.InvalidArgument, Message: "the code does not match the new factor",
			Fields: map[string]string{"code": "is wrong, expired or already used: enter the current code of the authenticator"}}
	}
	// The factor is on (committed with its entry): a throttle failure is logged, not
	// answered, so the client does not retry a done confirmation.
	if err := s.store.attemptSucceeded(ctx, keys[0].name, addressKeyOf(keys), now); err != nil {
		_ = level.Warn(s.log).Log("msg", "login throttle not cleared after a confirmation", "user_id", u.ID,
			"request_id", observe.RequestID(ctx), "err", err)
	}
	return pctx, codes, nil
}

// ConfirmTOTP implements Service for the caller's own pending factor.
func (s *service) ConfirmTOTP(ctx context.Context, req ConfirmTOTPRequest) (r RecoveryCodes, err error) {
	u, err := s.principalUser(ctx)
	if err != nil {
		return RecoveryCodes{}, err
	}
	pctx, codes, err := s.confirm(ctx, u, "", req.Code, s.at())
	s.recordAfter(pctx, ActionMFAConfirm, u.ID, err)
	return RecoveryCodes{RecoveryCodes: codes}, err
}

// LoginConfirmTOTP implements Service: the enrol challenge's user confirms its new factor
// and is logged in.
func (s *service) LoginConfirmTOTP(ctx context.Context, req ChallengeConfirmRequest) (l MFALogin, err error) {
	if msg := checkOpaqueToken(req.Challenge); msg != "" {
		return MFALogin{}, errs.Invalid(map[string]string{"challenge": msg})
	}
	now := s.at()
	u, h, err := s.challengeUser(ctx, req.Challenge, challengeEnrol, now)
	if err != nil {
		return MFALogin{}, err
	}
	uctx := asUser(ctx, u)
	pctx, codes, err := s.confirm(uctx, u, h, req.Code, now)
	s.recordAfter(pctx, ActionMFAConfirm, u.ID, err)
	if err != nil {
		return MFALogin{}, err
	}
	// The confirmation raised the token version (earlier sessions ended): the new
	// session's tokens carry the new one.
	if u, err = s.store.userByID(ctx, s.store.db, u.ID); err != nil {
		return MFALogin{}, err
	}
	pair, err := s.completeLogin(uctx, u, ActionLogin, now)
	return MFALogin{TokenPair: pair, RecoveryCodes: codes}, err
}

// completeLogin starts u's session (a new refresh family, with its sessions row and a device
// token for the device that completed the second step) and audits action.
func (s *service) completeLogin(ctx context.Context, u User, action string, now time.Time) (TokenPair, error) {
	family := uuid.NewString()
	pair, refreshHash, err := s.issue(u, family, now)
	if err != nil {
		return TokenPair{}, err
	}
	if err := s.startSession(ctx, &pair, u, family, refreshHash, loginDevice{}, now); err != nil {
		return TokenPair{}, err
	}
	if err := s.record(ctx, action, u.ID, audit.OutcomeSuccess); err != nil {
		return TokenPair{}, err
	}
	return pair, nil
}

// LoginMFA implements Service: the challenge of a login answered mfa_required and a code (or
// a recovery code) complete it. Codes are throttled as passwords; a wrong one leaves the
// challenge usable until it expires.
func (s *service) LoginMFA(ctx context.Context, req LoginMFARequest) (TokenPair, error) {
	var bad errs.Fields
	if msg := checkOpaqueToken(req.Challenge); msg != "" {
		bad.Add("challenge", msg)
	}
	recoveryHash, err := factorInput(req.Code, req.RecoveryCode)
	if err != nil {
		for f, m := range errs.As(err).Fields {
			bad.Add(f, m)
		}
	}
	if err := bad.Err(); err != nil {
		return TokenPair{}, err
	}
	now := s.at()
	u, h, err := s.challengeUser(ctx, req.Challenge, challengeMFA, now)
	if err != nil {
		return TokenPair{}, err
	}
	keys, err := s.admitCode(ctx, u, now)
	if err != nil {
		s.recordAfter(ctx, ActionLoginMFA, u.ID, err)
		return TokenPair{}, err
	}
	uctx := asUser(ctx, u)
	// A recovery code spent is recorded in the transaction that spends it.
	sctx, rctx := ctx, uctx
	if recoveryHash != "" {
		rctx = audit.WithPending(uctx, ActionRecoveryCodeUsed, u.ID)
		sctx = rctx
	}
	res, err := s.store.secondFactor(sctx, u.ID, h, s.codeChecker(u.ID, req.Code, now), recoveryHash, false, now)
	if err != nil {
		return TokenPair{}, err
	}
	switch res {
	case mfaOK:
	case mfaBadCode:
		if err := s.record(ctx, ActionLoginMFA, u.ID, audit.OutcomeDenied); err != nil {
			return TokenPair{}, err
		}
		return TokenPair{}, ErrBadCode
	default: // used meanwhile, or the factor was removed: log in again
		s.recordOutcome(ctx, ActionLoginMFA, u.ID, audit.OutcomeDenied)
		return TokenPair{}, ErrBadChallenge
	}
	if recoveryHash != "" {
		s.recordAfter(rctx, ActionRecoveryCodeUsed, u.ID, nil)
	}
	if err := s.store.attemptSucceeded(ctx, keys[0].name, addressKeyOf(keys), now); err != nil {
		return TokenPair{}, err
	}
	return s.completeLogin(uctx, u, ActionLoginMFA, now)
}

// DisableTOTP implements Service: the caller removes its own factor, proving it holds it
// with a current code or a recovery code (throttled as a password).
func (s *service) DisableTOTP(ctx context.Context, req DisableTOTPRequest) (err error) {
	u, err := s.principalUser(ctx)
	if err != nil {
		return err
	}
	recoveryHash, err := factorInput(req.Code, req.RecoveryCode)
	if err != nil {
		return err
	}
	// The removal's transaction records its entry (and the recovery code it spent); the
	// throttle's transactions run on ctx, without them.
	pctx := audit.WithPending(ctx, ActionMFADisable, u.ID)
	if recoveryHash != "" {
		pctx = audit.WithPendingAlso(pctx, ActionRecoveryCodeUsed, u.ID)
	}
	defer func() { s.recordAfter(pctx, ActionMFADisable, u.ID, err) }()
	now := s.at()
	keys, err := s.admitCode(ctx, u, now)
	if err != nil {
		return err
	}
	res, err := s.store.secondFactor(pctx, u.ID, "", s.codeChecker(u.ID, req.Code, now), recoveryHash, true, now)
	if err != nil {
		return err
	}
	switch res {
	case mfaNotEnrolled:
		return ErrMFANotEnrolled
	case mfaBadCode:
		return ErrBadCode
	}
	// The factor is gone (committed with its entries): a throttle failure is logged, not
	// answered, so the client does not retry a done removal.
	if err := s.store.attemptSucceeded(ctx, keys[0].name, addressKeyOf(keys), now); err != nil {
		_ = level.Warn(s.log).Log("msg", "login throttle not cleared after a removal", "user_id", u.ID,
			"request_id", observe.RequestID(ctx), "err", err)
	}
	return nil
}
