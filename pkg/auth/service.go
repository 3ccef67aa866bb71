package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/golang-jwt/jwt/v4"
	"github.com/google/uuid"

	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/validate"
)

// Service is the auth API. Logins, failures, lock-outs, refresh reuse and user changes are
// written to the audit log before the call returns.
type Service interface {
	Login(ctx context.Context, req LoginRequest) (TokenPair, error)
	// Validate returns the claims of the access token the (already verified) caller
	// presented.
	Validate(ctx context.Context) (Validation, error)
	Refresh(ctx context.Context, req RefreshRequest) (TokenPair, error)
	Logout(ctx context.Context, req LogoutRequest) error
	JWKS(ctx context.Context) (authz.JWKS, error)
	// CreateUser adds a user; without a password it is invited: it cannot log in until its
	// one-time set-password token (in the answer, and nowhere else) is used with SetPassword.
	CreateUser(ctx context.Context, req CreateUserRequest) (CreatedUser, error)
	// SetPassword sets a user's password with a one-time set-password token (an invite's);
	// a token that cannot be used is ErrBadSetPasswordToken, whatever the reason.
	SetPassword(ctx context.Context, req SetPasswordRequest) error
	// ChangePassword changes the caller's own password: the current one is verified (a
	// wrong one is ErrBadCurrentPassword and counts as a failed login in the throttle), the
	// new one checked, and every refresh token of the user revoked (every session ends; the
	// access token in hand lives out its few minutes).
	ChangePassword(ctx context.Context, req ChangePasswordRequest) error
	// ResetPassword (admin) ends a user's password and sessions and returns a one-time,
	// short-lived set-password token: the user cannot log in until it is used with
	// SetPassword. An admin's own account is refused (it changes its password instead).
	ResetPassword(ctx context.Context, req ResetPasswordRequest) (ResetPassword, error)
	ListUsers(ctx context.Context) ([]User, error)
	GetUser(ctx context.Context, id string) (User, error)
	UpdateUser(ctx context.Context, req UpdateUserRequest) (User, error)
	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
	// VerifyAudit walks the audit chain and returns the verdict (docs/audit.md).
	VerifyAudit(ctx context.Context) (audit.Report, error)
	// MFAService: TOTP factors and the logins that need them (mfa.go).
	MFAService
	// ListSessions returns the caller's live sessions (sessions.go).
	ListSessions(ctx context.Context) ([]Session, error)
	// DeleteSession ends one of the caller's sessions; another's or an unknown one is
	// ErrSessionNotFound.
	DeleteSession(ctx context.Context, req DeleteSessionRequest) error
	// LogoutAll ends every session and access token of the caller.
	LogoutAll(ctx context.Context) error
}

// AuditLog is where the service writes its audit entries; Append returns once the entry is
// durably stored (pkg/platform/audit.Writer).
type AuditLog interface {
	Append(ctx context.Context, e audit.Entry) error
}

// Options configure the service. Zero values work.
type Options struct {
	// Now is the clock; tests move it. Defaults to time.Now.
	Now func() time.Time
	// Logger receives operational messages (ids only; never a password, token or email).
	Logger log.Logger
	// AuditTopic, when set, lets VerifyAudit compare the chain with the audit topic on request
	// (GET /audit/verify?againstTopic=true; docs/audit.md). Nil: the chain is verified alone.
	AuditTopic *audit.TopicCheck
	// Hasher hashes passwords; default NewArgon2id(DefaultArgon2id, 0).
	Hasher Hasher
	// Issuer and Audience go into every access token; defaults authz.DefaultIssuer and
	// authz.DefaultAudience.
	Issuer, Audience string
	// RefreshTTL is a login's lifetime: its refresh tokens, however often rotated, stop
	// working this long after the login. Default 12 hours.
	RefreshTTL time.Duration
	// Throttle limits failed logins.
	Throttle ThrottleOptions
	// InviteTTL is how long an invited user's set-password token works; default
	// DefaultInviteTTL.
	InviteTTL time.Duration
	// ResetTTL is how long an admin reset's set-password token works; default
	// DefaultResetTTL.
	ResetTTL time.Duration
	// MFA configures second factors and login challenges (mfa.go).
	MFA MFAOptions
	// Sessions set the refresh idle timeout and the known devices' expiry and cap.
	Sessions SessionOptions
}

// DefaultRefreshTTL is a login's default lifetime: a long shift.
const DefaultRefreshTTL = 12 * time.Hour

type service struct {
	// topic compares the audit chain with the audit topic on request (VerifyAudit).
	topic      *audit.TopicCheck
	store      *Store
	audit      AuditLog
	keys       *KeyRing
	hasher     Hasher
	now        func() time.Time
	log        log.Logger
	issuer     string
	audience   string
	refreshTTL time.Duration
	inviteTTL  time.Duration
	resetTTL   time.Duration
	throttle   ThrottleOptions
	sessions   SessionOptions
	// dummyHash is verified when the email is unknown, so that answer takes as long as a
	// wrong password does.
	dummyHash string

	mfaState

	pruneMu   sync.Mutex
	lastPrune time.Time
}

// NewService returns the auth service over store, signing with keys and auditing to
// auditLog. It computes one password hash (the dummy for unknown emails) before returning.
// keys may be nil in a process that only manages users (`pms user create`): it then issues
// no tokens.
func NewService(ctx context.Context, store *Store, keys *KeyRing, auditLog AuditLog, o Options) (Service, error) {
	s := &service{store: store, audit: auditLog, keys: keys, hasher: o.Hasher, now: o.Now, log: o.Logger,
		issuer: o.Issuer, audience: o.Audience, refreshTTL: o.RefreshTTL, inviteTTL: o.InviteTTL, resetTTL: o.ResetTTL, throttle: o.Throttle.withDefaults(),
		sessions: o.Sessions.withDefaults(), topic: o.AuditTopic}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = log.NewNopLogger()
	}
	if s.hasher == nil {
		s.hasher = NewArgon2id(DefaultArgon2id, 0)
	}
	if s.issuer == "" {
		s.issuer = authz.DefaultIssuer
	}
	if s.audience == "" {
		s.audience = authz.DefaultAudience
	}
	if s.refreshTTL <= 0 {
		s.refreshTTL = DefaultRefreshTTL
	}
	if s.inviteTTL <= 0 {
		s.inviteTTL = DefaultInviteTTL
	}
	if s.resetTTL <= 0 {
		s.resetTTL = DefaultResetTTL
	}
	if err := s.mfaOptions(o.MFA); err != nil {
		return nil, err
	}
	random, err := GeneratePassword()
	if err != nil {
		return nil, err
	}
	if s.dummyHash, err = s.hasher.Hash(ctx, random); err != nil {
		return nil, fmt.Errorf("auth: dummy hash: %w", err)
	}
	return s, nil
}

// at is the service clock, in UTC to the microsecond (what both databases keep).
func (s *service) at() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// record writes an audit entry about userID. An audit failure fails the call: an
// unaudited login or change must not look like a success.
func (s *service) record(ctx context.Context, action, userID, outcome string) error {
	actor, role := authz.Actor(ctx)
	return s.audit.Append(ctx, audit.Entry{
		Actor: actor, Role: role, Action: action, SubjectID: userID, Outcome: outcome,
		RequestID: observe.RequestID(ctx), ClientAddress: observe.ClientAddr(ctx),
	})
}

// recordAfter audits a refusal or a change already committed: the caller's error (or nil)
// stands, and an audit failure is logged rather than turned into an error that would make a
// client retry a done change. Like audit.Recorder.Change it writes on a context detached from
// the caller's cancellation: a client that hangs up after the commit leaves it audited.
//
// A change that recorded its entry in its own transaction (audit.WithPending before the
// store call: the store's inTx is audit.InTx) is already audited: its entry is only chained
// now (audit.SettleCommitted), so an acknowledged change has its entry whatever happens to
// the database after the commit (issue 17, item 2).
func (s *service) recordAfter(ctx context.Context, action, userID string, err error) {
	if err == nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), audit.ChangeTimeout)
		defer cancel()
		if audit.SettleCommitted(sctx, s.audit, s.log, action) {
			return
		}
	}
	s.recordOutcome(ctx, action, userID, outcome(err))
}

// recordOutcome is recordAfter with the outcome given.
func (s *service) recordOutcome(ctx context.Context, action, userID, outcome string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), audit.ChangeTimeout)
	defer cancel()
	if aerr := s.record(ctx, action, userID, outcome); aerr != nil {
		_ = level.Error(s.log).Log("msg", "audit write failed", "action", action, "user_id", userID,
			"request_id", observe.RequestID(ctx), "err", aerr)
	}
}

func outcome(err error) string {
	switch errs.KindOf(err) {
	case "":
		return audit.OutcomeSuccess
	case errs.Unauthenticated, errs.PermissionDenied, errs.RateLimited, errs.MFARequired, errs.PasswordChangeRequired:
		return audit.OutcomeDenied
	case errs.NotFound:
		return audit.OutcomeNotFound
	case errs.InvalidArgument, errs.Conflict, errs.PreconditionFailed, errs.PayloadTooLarge, errs.UnsupportedMediaType:
		return audit.OutcomeRejected
	default:
		return audit.OutcomeError
	}
}

// asUser returns ctx acting as u, so audit rows of their own login name them.
func asUser(ctx context.Context, u User) context.Context {
	return authz.WithPrincipal(ctx, authz.Principal{Subject: u.ID, Email: u.Email, Role: u.Role})
}

func (s *service) Login(ctx context.Context, req LoginRequest) (TokenPair, error) {
	var bad errs.Fields
	email := strings.TrimSpace(req.Email)
	switch {
	case email == "":
		bad.Add("email", "is required")
	case len(email) > MaxEmailLen:
		bad.Add("email", "must be at most 254 characters")
	case !validate.Printable(email, false):
		// No account has such an address, and the throttle could not record it.
		bad.Add("email", "must be a valid email address")
	}
	switch {
	case req.Password == "":
		bad.Add("password", "is required")
	case len(req.Password) > MaxPasswordBytes:
		bad.Add("password", fmt.Sprintf("must be at most %d bytes", MaxPasswordBytes))
	}
	if err := bad.Err(); err != nil {
		return TokenPair{}, err
	}
	s.maybePrune(ctx)
	now := s.at()

	// Throttling comes first and costs no hash: a locked account or address is refused
	// however right the password. A known device is throttled on its own (devices.go).
	dev, err := s.deviceOf(ctx, email, req.DeviceToken, now)
	if err != nil {
		return TokenPair{}, err
	}
	keys := s.loginKeys(email, observe.ClientAddr(ctx), dev)
	d, err := s.store.admitAttempt(ctx, s.throttle, keys, now)
	if err != nil {
		return TokenPair{}, err
	}
	if d.Retry > 0 {
		for _, k := range d.Locked {
			action, subject := lockoutAction(k), ""
			if action != ActionLockoutAddress {
				if u, _, found, err := s.store.userByEmail(ctx, email); err == nil && found {
					subject = u.ID
				}
			}
			if err := s.record(ctx, action, subject, audit.OutcomeDenied); err != nil {
				return TokenPair{}, err
			}
		}
		return TokenPair{}, &errs.Error{Kind: errs.RateLimited, Message: "too many failed logins; try again later", RetryAfter: d.Retry}
	}

	u, hash, found, err := s.store.userByEmail(ctx, email)
	if err != nil {
		return TokenPair{}, err
	}
	// An invited user has no password yet: it is refused like a wrong password, after the
	// same work.
	invited := found && hash == ""
	if !found || invited {
		// The same work as for a known account, so the answer takes as long.
		hash = s.dummyHash
	}
	ok, err := s.hasher.Verify(ctx, hash, req.Password)
	if err != nil {
		return TokenPair{}, err
	}
	if !found || invited || !ok || u.Disabled {
		if err := s.record(ctx, ActionLogin, u.ID, audit.OutcomeDenied); err != nil {
			return TokenPair{}, err
		}
		return TokenPair{}, ErrBadCredentials
	}
	// A right password with a step still due (password change, second factor): 401 with a
	// challenge (mfa.go).
	if err := s.secondStep(ctx, u, keys, now); err != nil {
		return TokenPair{}, err
	}
	if err := s.store.attemptSucceeded(ctx, keys[0].name, addressKeyOf(keys), now); err != nil {
		return TokenPair{}, err
	}
	family := uuid.NewString()
	pair, refreshHash, err := s.issue(u, family, now)
	if err != nil {
		return TokenPair{}, err
	}
	if err := s.startSession(ctx, &pair, u, family, refreshHash, dev, now); err != nil {
		return TokenPair{}, err
	}
	if err := s.record(asUser(ctx, u), ActionLogin, u.ID, audit.OutcomeSuccess); err != nil {
		return TokenPair{}, err
	}
	return pair, nil
}

func addressKeyOf(keys []throttleKey) string {
	if len(keys) > 1 {
		return keys[1].name
	}
	return ""
}

// issue signs an access token for u in session family and makes a refresh token, returning
// the pair and the refresh token's hash (the only form in which it is stored).
func (s *service) issue(u User, family string, now time.Time) (TokenPair, string, error) {
	claims := authz.Claims{Email: u.Email, Role: u.Role, SessionID: family, Version: u.TokenVersion, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: s.issuer, Audience: jwt.ClaimStrings{s.audience}, Subject: u.ID,
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(authz.AccessTokenTTL)), ID: uuid.NewString(),
	}}
	if s.keys == nil {
		return TokenPair{}, "", errs.New(errs.Unavailable, "this process issues no tokens")
	}
	token, err := s.keys.Sign(claims)
	if err != nil {
		return TokenPair{}, "", errs.Wrap(errs.Internal, "internal error", err)
	}
	refresh, err := newRefreshToken()
	if err != nil {
		return TokenPair{}, "", errs.Wrap(errs.Internal, "internal error", err)
	}
	return TokenPair{Token: token, TokenType: TokenType, ExpiresIn: int64(authz.AccessTokenTTL / time.Second), RefreshToken: refresh},
		hashRefreshToken(refresh), nil
}

// newRefreshToken returns 256 random bits, base64url: opaque, unguessable, and never a JWT.
// Set-password tokens are made the same way.
func newRefreshToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// hashRefreshToken is the form a refresh token is stored and looked up in: SHA-256, hex. A
// fast hash is right here, unlike for passwords: the token has 256 bits of entropy.
func hashRefreshToken(t string) string {
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

// checkRefreshToken refuses what cannot be one of our refresh tokens before any lookup.
func checkRefreshToken(t string) error {
	if msg := checkOpaqueToken(t); msg != "" {
		return errs.Invalid(map[string]string{"refreshToken": msg})
	}
	return nil
}

// checkOpaqueToken returns why t cannot be one of our opaque tokens (refresh and
// set-password tokens), or "".
func checkOpaqueToken(t string) string {
	switch {
	case t == "":
		return "is required"
	case len(t) > 256:
		return "must be at most 256 characters"
	}
	return ""
}

func (s *service) Refresh(ctx context.Context, req RefreshRequest) (TokenPair, error) {
	if err := checkRefreshToken(req.RefreshToken); err != nil {
		return TokenPair{}, err
	}
	now := s.at()
	newToken, err := newRefreshToken()
	if err != nil {
		return TokenPair{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	u, family, res, err := s.store.rotateRefresh(ctx, hashRefreshToken(req.RefreshToken), hashRefreshToken(newToken), s.useOf(ctx, now))
	if err != nil {
		return TokenPair{}, err
	}
	switch res {
	case refreshOK:
	case refreshUnknown:
		return TokenPair{}, ErrBadRefreshToken
	case refreshReused:
		if err := s.record(ctx, ActionRefreshReuse, u.ID, audit.OutcomeDenied); err != nil {
			return TokenPair{}, err
		}
		_ = level.Warn(s.log).Log("msg", "refresh token reused; its family is revoked", "user_id", u.ID,
			"request_id", observe.RequestID(ctx))
		return TokenPair{}, ErrBadRefreshToken
	default:
		if err := s.record(ctx, ActionRefresh, u.ID, audit.OutcomeDenied); err != nil {
			return TokenPair{}, err
		}
		return TokenPair{}, ErrBadRefreshToken
	}
	pair, _, err := s.issue(u, family, now)
	if err != nil {
		return TokenPair{}, err
	}
	pair.RefreshToken = newToken
	if err := s.record(asUser(ctx, u), ActionRefresh, u.ID, audit.OutcomeSuccess); err != nil {
		return TokenPair{}, err
	}
	return pair, nil
}

func (s *service) Logout(ctx context.Context, req LogoutRequest) error {
	if err := checkRefreshToken(req.RefreshToken); err != nil {
		return err
	}
	userID, found, err := s.store.revokeFamilyOf(ctx, hashRefreshToken(req.RefreshToken), s.at())
	if err != nil || !found {
		// An unknown token has nothing to end; saying so would make logout an oracle.
		return err
	}
	// The refresh token proved whose session this was: the row names them as the actor.
	return s.record(authz.WithPrincipal(ctx, authz.Principal{Subject: userID}), ActionLogout, userID, audit.OutcomeSuccess)
}

func (s *service) Validate(ctx context.Context) (Validation, error) {
	p, ok := authz.FromContext(ctx)
	raw := authz.Token(ctx)
	if !ok || p.Subject == "" || raw == "" {
		return Validation{}, errs.New(errs.Unauthenticated, "a valid access token is required")
	}
	// The guard has verified this very token (signature, iss, aud, exp, nbf); only its exp
	// is read back here.
	var c authz.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &c); err != nil || c.ExpiresAt == nil || c.Subject != p.Subject {
		return Validation{}, errs.New(errs.Unauthenticated, "a valid access token is required")
	}
	return Validation{Sub: p.Subject, Email: p.Email, Role: p.Role, Exp: c.ExpiresAt.Unix()}, nil
}

func (s *service) JWKS(context.Context) (authz.JWKS, error) {
	if s.keys == nil {
		return authz.JWKS{Keys: []authz.JWK{}}, nil
	}
	return s.keys.JWKS(), nil
}

// newUser validates a create request and returns the user to store (email trimmed). An
// empty password is no error: the user is invited.
func newUser(req CreateUserRequest, now time.Time) (User, error) {
	var bad errs.Fields
	email := strings.TrimSpace(req.Email)
	if msg := validate.Email(email); msg != "" {
		bad.Add("email", msg)
	}
	if msg := checkPassword(req.Password, email); req.Password != "" && msg != "" {
		bad.Add("password", msg)
	}
	if !authz.ValidRole(req.Role) {
		bad.Add("role", "must be one of admin, clinician, billing, analyst")
	}
	if err := bad.Err(); err != nil {
		return User{}, err
	}
	return User{ID: uuid.NewString(), Email: email, Role: req.Role, CreatedAt: now, UpdatedAt: now}, nil
}

func (s *service) CreateUser(ctx context.Context, req CreateUserRequest) (c CreatedUser, err error) {
	defer func() { s.recordAfter(ctx, ActionUserCreate, c.ID, err) }()
	now := s.at()
	u, err := newUser(req, now)
	if err != nil {
		return CreatedUser{}, err
	}
	ctx = audit.WithPending(ctx, ActionUserCreate, u.ID) // recorded in the user's transaction
	if req.Password == "" {
		return s.invite(ctx, u, now)
	}
	hash, err := s.hasher.Hash(ctx, req.Password)
	if err != nil {
		return CreatedUser{}, err
	}
	if err := s.store.createUser(ctx, u, hash, nil); err != nil {
		return CreatedUser{}, err
	}
	return CreatedUser{User: u}, nil
}

// invite stores u without a password, with a one-time set-password token (256 random bits,
// stored as its SHA-256) that works for the invite TTL, and returns the token: the only
// time it is shown.
func (s *service) invite(ctx context.Context, u User, now time.Time) (CreatedUser, error) {
	token, err := newRefreshToken()
	if err != nil {
		return CreatedUser{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	expires := now.Add(s.inviteTTL)
	t := &setPasswordToken{hash: hashRefreshToken(token), purpose: PurposeInvite, created: now, expires: expires}
	if err := s.store.createUser(ctx, u, "", t); err != nil {
		return CreatedUser{}, err
	}
	return CreatedUser{User: u, InviteToken: token, InviteExpiresAt: &expires}, nil
}

// SetPassword checks the request, looks the token up (cheaply: a SHA-256, no password
// hash for a token that cannot work, so an anonymous caller cannot make the service spend
// argon2id), checks the password against the user's email, hashes it, and sets it in one
// transaction that uses the token up (Store.setPassword checks it again under a lock).
func (s *service) SetPassword(ctx context.Context, req SetPasswordRequest) error {
	var bad errs.Fields
	if msg := checkOpaqueToken(req.Token); msg != "" {
		bad.Add("token", msg)
	}
	if msg := checkPassword(req.NewPassword, ""); msg != "" {
		bad.Add("newPassword", msg)
	}
	if err := bad.Err(); err != nil {
		return err
	}
	now := s.at()
	tokenHash := hashRefreshToken(req.Token)
	t, found, err := s.store.setPasswordTokenOf(ctx, s.store.db, tokenHash, "")
	if err != nil {
		return err
	}
	if !found {
		return ErrBadSetPasswordToken
	}
	u, err := s.store.userByID(ctx, s.store.db, t.userID)
	if err != nil && !errors.Is(err, ErrUserNotFound) {
		return err
	}
	if err != nil || !t.usable(now) || u.Disabled {
		s.recordOutcome(ctx, ActionPasswordSet, t.userID, audit.OutcomeDenied)
		return ErrBadSetPasswordToken
	}
	if msg := checkPassword(req.NewPassword, u.Email); msg != "" {
		return errs.Invalid(map[string]string{"newPassword": msg})
	}
	hash, err := s.hasher.Hash(ctx, req.NewPassword)
	if err != nil {
		return err
	}
	// The token proved whose account this is: the entry names them as the actor, and is
	// recorded in the transaction that sets the password (when it does).
	pctx := audit.WithPending(asUser(ctx, u), ActionPasswordSet, u.ID)
	u, ok, err := s.store.setPassword(pctx, tokenHash, hash, now)
	if err != nil {
		return err
	}
	if !ok {
		// Used (or expired, or its user disabled) between the look-up and the lock.
		s.recordOutcome(ctx, ActionPasswordSet, u.ID, audit.OutcomeDenied)
		return ErrBadSetPasswordToken
	}
	// The change is committed (and the token spent), so an audit failure is logged, not answered.
	s.recordAfter(pctx, ActionPasswordSet, u.ID, nil)
	return nil
}

// ChangePassword implements Service. It runs the login throttle before any hash, as Login
// does: a stolen access token cannot be used to guess the password at speed.
func (s *service) ChangePassword(ctx context.Context, req ChangePasswordRequest) error {
	p, ok := authz.FromContext(ctx)
	uid, err := parseID(p.Subject)
	if !ok || err != nil {
		// A service principal, or no user: only a user has a password of its own.
		return errs.New(errs.PermissionDenied, "only a signed-in user can change its own password")
	}
	var bad errs.Fields
	switch {
	case req.CurrentPassword == "":
		bad.Add("currentPassword", "is required")
	case len(req.CurrentPassword) > MaxPasswordBytes:
		bad.Add("currentPassword", fmt.Sprintf("must be at most %d bytes", MaxPasswordBytes))
	}
	if msg := checkPassword(req.NewPassword, ""); msg != "" {
		bad.Add("newPassword", msg)
	}
	if err := bad.Err(); err != nil {
		return err
	}
	u, err := s.store.userByID(ctx, s.store.db, uid)
	if err != nil {
		if errors.Is(err, ErrUserNotFound) {
			return ErrBadCredentials
		}
		return err
	}
	now := s.at()
	// The change is throttled on the user's own key: only a holder of the user's access token
	// spends it, so strangers failing to log in as the user cannot block the change (issue 16
	// item 4). A wrong current password also counts against the account's unknown-device
	// key below, as a failed login would.
	keys := []throttleKey{{name: passwordChangeKey(u.ID), limit: s.throttle.AccountAttempts}}
	d, err := s.store.admitAttempt(ctx, s.throttle, keys, now)
	if err != nil {
		return err
	}
	if d.Retry > 0 {
		s.recordOutcome(ctx, ActionPasswordChange, u.ID, audit.OutcomeDenied)
		return &errs.Error{Kind: errs.RateLimited, Message: "too many failed attempts; try again later", RetryAfter: d.Retry}
	}
	_, oldHash, found, err := s.store.userByEmail(ctx, u.Email)
	if err != nil {
		return err
	}
	if !found || oldHash == "" || u.Disabled {
		s.recordOutcome(ctx, ActionPasswordChange, u.ID, audit.OutcomeDenied)
		return ErrBadCredentials
	}
	match, err := s.hasher.Verify(ctx, oldHash, req.CurrentPassword)
	if err != nil {
		return err
	}
	if !match {
		if _, err := s.store.admitAttempt(ctx, s.throttle, []throttleKey{{name: accountKey(u.Email), limit: s.throttle.AccountAttempts}}, now); err != nil {
			return err
		}
		if err := s.record(ctx, ActionPasswordChange, u.ID, audit.OutcomeDenied); err != nil {
			return err
		}
		return ErrBadCurrentPassword
	}
	if err := s.store.attemptSucceeded(ctx, keys[0].name, "", now); err != nil {
		return err
	}
	if msg := checkPassword(req.NewPassword, u.Email); msg != "" {
		return errs.Invalid(map[string]string{"newPassword": msg})
	}
	if req.NewPassword == req.CurrentPassword {
		return errs.Invalid(map[string]string{"newPassword": "must differ from the current password"})
	}
	hash, err := s.hasher.Hash(ctx, req.NewPassword)
	if err != nil {
		return err
	}
	ctx = audit.WithPending(ctx, ActionPasswordChange, u.ID) // recorded in the change's transaction
	changed, err := s.store.changePassword(ctx, u.ID, oldHash, hash, p.SessionID, now)
	if err != nil {
		return err
	}
	if !changed {
		// The password changed (or the user was disabled) since it was verified.
		s.recordOutcome(ctx, ActionPasswordChange, u.ID, audit.OutcomeDenied)
		return ErrBadCurrentPassword
	}
	s.recordAfter(ctx, ActionPasswordChange, u.ID, nil)
	return nil
}

// ResetPassword implements Service: one transaction stores a new set-password token
// (purpose reset, 256 random bits kept as their SHA-256, working for the reset TTL), ends the
// user's other unused tokens, removes the password (the user is then refused at login like an
// invited one) and revokes every refresh token of the user.
func (s *service) ResetPassword(ctx context.Context, req ResetPasswordRequest) (r ResetPassword, err error) {
	uid, err := parseID(req.ID)
	defer func() { s.recordAfter(ctx, ActionPasswordReset, uid, err) }()
	if err != nil {
		return ResetPassword{}, err
	}
	if p, _ := authz.FromContext(ctx); p.Subject == uid {
		return ResetPassword{}, errs.New(errs.InvalidArgument, "an admin cannot reset its own password; change it with POST /auth/password")
	}
	token, err := newRefreshToken()
	if err != nil {
		return ResetPassword{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	now := s.at()
	expires := now.Add(s.resetTTL)
	t := setPasswordToken{hash: hashRefreshToken(token), userID: uid, purpose: PurposeReset, created: now, expires: expires}
	ctx = audit.WithPending(ctx, ActionPasswordReset, uid) // recorded in the reset's transaction
	if err := s.store.resetPassword(ctx, t); err != nil {
		return ResetPassword{}, err
	}
	return ResetPassword{ResetToken: token, ResetExpiresAt: expires}, nil
}

func (s *service) ListUsers(ctx context.Context) ([]User, error) {
	users, err := s.store.listUsers(ctx)
	return auditedRead(s, ctx, ActionUserRead, "", users, err)
}

func (s *service) GetUser(ctx context.Context, id string) (User, error) {
	uid, err := parseID(id)
	var u User
	if err == nil {
		u, err = s.store.userByID(ctx, s.store.db, uid)
	}
	return auditedRead(s, ctx, ActionUserRead, uid, u, err)
}

func (s *service) UpdateUser(ctx context.Context, req UpdateUserRequest) (u User, err error) {
	uid, err := parseID(req.ID)
	defer func() { s.recordAfter(ctx, ActionUserUpdate, uid, err) }()
	if err != nil {
		return User{}, err
	}
	if req.Role != nil && !authz.ValidRole(*req.Role) {
		return User{}, errs.Invalid(map[string]string{"role": "must be one of admin, clinician, billing, analyst"})
	}
	ctx = audit.WithPending(ctx, ActionUserUpdate, uid) // recorded in the update's transaction
	_, after, err := s.store.updateUser(ctx, uid, s.at(), func(cur User) User {
		if req.Role != nil {
			cur.Role = *req.Role
		}
		if req.Disabled != nil {
			cur.Disabled = *req.Disabled
		}
		return cur
	})
	return after, err
}

func (s *service) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	aq, err := audit.CheckQuery(audit.Query{SubjectID: q.UserID, Actor: q.Actor, From: q.From, To: q.To, Limit: q.Limit}, "userId", parseID)
	var out []AuditEntry
	if err == nil {
		out, err = s.store.auditLog(ctx, AuditQuery{UserID: aq.SubjectID, Actor: aq.Actor, From: aq.From, To: aq.To, Limit: aq.Limit})
	}
	return auditedRead(s, ctx, ActionAuditRead, aq.SubjectID, out, err)
}

// pruneEvery is how often a login also deletes expired refresh tokens and idle throttles.
const pruneEvery = 10 * time.Minute

// maybePrune runs the store's housekeeping at most every pruneEvery, on the login path
// (no goroutine of its own to stop); a failure is logged and tried again next time.
func (s *service) maybePrune(ctx context.Context) {
	now := s.now()
	s.pruneMu.Lock()
	due := now.Sub(s.lastPrune) >= pruneEvery
	if due {
		s.lastPrune = now
	}
	s.pruneMu.Unlock()
	if !due {
		return
	}
	// Keep a day past expiry, and throttles a day past their longest memory, so audit
	// investigations can still find them.
	horizon := max(s.throttle.Window, s.throttle.MaxLockout) + 24*time.Hour
	if err := errors.Join(s.store.prune(ctx, now.Add(-horizon)), s.store.pruneSessions(ctx, now.Add(-horizon))); err != nil {
		_ = level.Warn(s.log).Log("msg", "auth housekeeping failed", "err", err)
	}
}

// BootstrapAdmin creates the first admin when no user exists yet (API.md, "First start"):
// email and password as given, or a generated password when password is empty, which it
// returns so the caller can show it once. It acts as the service itself ("svc:auth" in
// the audit log). created is false when users already exist (or another replica created
// the admin first).
func BootstrapAdmin(ctx context.Context, store *Store, svc Service, email, password string) (u User, generated string, created bool, err error) {
	n, err := store.countUsers(ctx)
	if err != nil || n > 0 {
		return User{}, "", false, err
	}
	for password == "" {
		if generated, err = GeneratePassword(); err != nil {
			return User{}, "", false, err
		}
		if checkPassword(generated, email) == "" { // (contains the email's name: draw again)
			password = generated
		}
	}
	c, err := svc.CreateUser(authz.Service(ctx, "auth"), CreateUserRequest{Email: email, Password: password, Role: authz.RoleAdmin})
	if errors.Is(err, ErrEmailTaken) {
		return User{}, "", false, nil
	}
	if err != nil {
		return User{}, "", false, fmt.Errorf("bootstrap admin: %w", err)
	}
	if generated != "" {
		// A generated password has been on a terminal: it works once, to change it.
		if err := store.requirePasswordChange(ctx, c.ID); err != nil {
			return User{}, "", false, fmt.Errorf("bootstrap admin: %w", err)
		}
	}
	return c.User, generated, true, nil
}
