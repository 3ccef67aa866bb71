// Package auth is the auth service's domain: users and their passwords (argon2id), logins
// that issue EdDSA access tokens (signed with authz.Sign by a key ring kept on disk) and
// opaque refresh tokens (stored only as hashes, rotated, families revoked on reuse), login
// throttling decided before any password is hashed, the audit log of all of it, the sqlx
// store, the go-kit endpoint set and service middleware. It knows nothing of HTTP, gRPC or
// Kafka; transports adapt to it. Verifying tokens is pkg/platform/authz's job, here as in
// every other service.
package auth

import (
	"time"

	"github.com/pms/pms/pkg/platform/errs"
)

// User is a user account as the contract shows it: never a password or its hash.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// TokenVersion is what the user's next access token carries (claim "ver"); a user-wide
	// revocation raises it, ending every token of a lower version.
	TokenVersion int64 `json:"-"`
}

// LoginRequest is POST /login.
type LoginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	// DeviceToken is optional: the device token an earlier login of this account on this
	// device returned. With it, failures count against this device only, so strangers'
	// failures against the account never lock the device out (devices.go).
	DeviceToken string `json:"deviceToken,omitempty"`
}

// TokenPair is what a login or a refresh returns. The access token is in "token", as the
// earlier Java implementation named it, so its clients keep working.
type TokenPair struct {
	Token        string `json:"token"`
	TokenType    string `json:"tokenType"`
	ExpiresIn    int64  `json:"expiresIn"` // seconds
	RefreshToken string `json:"refreshToken"`
	// DeviceToken is set by a login only: the device's token for this account, to send with
	// its next logins (LoginRequest.DeviceToken).
	DeviceToken string `json:"deviceToken,omitempty"`
}

// TokenType is the only token type issued.
const TokenType = "Bearer"

// RefreshRequest is POST /refresh: the refresh token to exchange for a new pair.
type RefreshRequest struct {
	RefreshToken string `json:"refreshToken"`
}

// LogoutRequest is POST /logout: the refresh token whose family ends.
type LogoutRequest struct {
	RefreshToken string `json:"refreshToken"`
}

// Validation is GET /validate's answer: the claims of the caller's access token. Exp is the
// token's exp claim as it is in the token (seconds since the Unix epoch).
type Validation struct {
	Sub   string `json:"sub"`
	Email string `json:"email"`
	Role  string `json:"role"`
	Exp   int64  `json:"exp"`
}

// CreateUserRequest is POST /users. An omitted (or empty) password invites the user: the
// account cannot log in until a set-password token sets one (CreatedUser.InviteToken).
type CreateUserRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

// CreatedUser is what CreateUser returns: the user and, when it was invited (created
// without a password), the one-time set-password token that lets it choose one and when
// that token expires. The token is shown in this answer only: the service keeps its SHA-256.
type CreatedUser struct {
	User
	InviteToken     string     `json:"inviteToken,omitempty"`
	InviteExpiresAt *time.Time `json:"inviteExpiresAt,omitempty"`
}

// SetPasswordRequest is POST /password/set: a one-time set-password token (an invite's, or
// later an admin reset's) and the password to set.
type SetPasswordRequest struct {
	Token       string `json:"token"`
	NewPassword string `json:"newPassword"`
}

// ChangePasswordRequest is POST /password: the caller changes its own password, proving
// it knows the current one.
type ChangePasswordRequest struct {
	CurrentPassword string `json:"currentPassword"`
	NewPassword     string `json:"newPassword"`
}

// ResetPasswordRequest is POST /users/{id}/reset-password (admin).
type ResetPasswordRequest struct {
	ID string `json:"-"`
}

// ResetPassword is what ResetPassword returns: the one-time set-password token (shown in this
// answer only) the user gives to POST /password/set, and when it stops working.
type ResetPassword struct {
	ResetToken     string    `json:"resetToken"`
	ResetExpiresAt time.Time `json:"resetExpiresAt"`
}

// UpdateUserRequest is PATCH /users/{id}: nil fields are left as they are.
type UpdateUserRequest struct {
	ID       string  `json:"-"`
	Role     *string `json:"role,omitempty"`
	Disabled *bool   `json:"disabled,omitempty"`
}

// AuditQuery filters the audit log. Zero values mean "any"; Limit 0 means
// DefaultAuditLimit.
type AuditQuery struct {
	UserID string
	Actor  string
	From   time.Time
	To     time.Time
	Limit  int
}

// Audit paging limits.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// AuditEntry is one row of the auth audit log; UserID is the account the action was about
// (empty for a login with an unknown email).
type AuditEntry struct {
	ID            string    `json:"id"`
	At            time.Time `json:"at"`
	Actor         string    `json:"actor"`
	Role          string    `json:"role"`
	Action        string    `json:"action"`
	UserID        string    `json:"userId"`
	Outcome       string    `json:"outcome"`
	RequestID     string    `json:"requestId"`
	ClientAddress string    `json:"clientAddress"`
}

// The actions the auth audit log records.
const (
	ActionLogin        = "login"         // success, or denied (bad credentials, disabled)
	ActionLockout      = "lockout"       // a throttle lock began (account or address)
	ActionRefresh      = "refresh"       // success, or denied
	ActionRefreshReuse = "refresh_reuse" // a used refresh token came back: family revoked
	ActionLogout       = "logout"
	ActionUserCreate   = "user_create"
	ActionUserUpdate   = "user_update"
	ActionUserRead     = "user_read" // a read of the user list or of one user (issue 17), or a refused one
	// ActionPasswordSet: a set-password token was used (success), or a known one was
	// presented used or expired, or for a disabled user (denied). Unknown tokens concern no
	// account and are not audited (as unknown refresh tokens).
	ActionPasswordSet = "password_set"
	// ActionPasswordChange: a signed-in user changed its own password (success), or gave a
	// wrong current password (denied, counted by the login throttle).
	ActionPasswordChange = "password_change"
	ActionAuditRead      = "audit_read"
	// ActionPasswordReset: an admin reset a user's password (success; not_found; rejected for
	// the admin's own account), or was refused one (denied, via the guard).
	ActionPasswordReset = "password_reset"
)

// Password and field limits.
const (
	MinPasswordLen   = 12   // characters
	MaxPasswordBytes = 1024 // longer is refused before hashing: no hash-length DoS
	MaxEmailLen      = 254
)

// Domain errors. Transports map their kinds to statuses; errors.Is matches by kind.
var (
	// ErrBadCredentials is the one answer to a failed login, whatever failed: unknown
	// email, wrong password or a disabled account.
	ErrBadCredentials = errs.New(errs.Unauthenticated, "invalid email or password")
	// ErrBadRefreshToken is the one answer to a refresh token that cannot be used.
	ErrBadRefreshToken = errs.New(errs.Unauthenticated, "invalid refresh token")
	ErrUserNotFound    = errs.New(errs.NotFound, "user not found")
	ErrEmailTaken      = errs.New(errs.Conflict, "a user with this email already exists")
	ErrLastAdmin       = errs.New(errs.Conflict, "this change would leave no active admin")
	// ErrBadCurrentPassword refuses a password change whose current password is wrong.
	ErrBadCurrentPassword = errs.New(errs.Unauthenticated, "the current password is wrong")
	// ErrBadSetPasswordToken is the one answer to a set-password token that cannot be used:
	// unknown, used, expired, or its user disabled.
	ErrBadSetPasswordToken = &errs.Error{Kind: errs.InvalidArgument, Message: "invalid or expired set-password token",
		Fields: map[string]string{"token": "is invalid, expired or already used"}}
)

// Purposes of a set-password token (table set_password_tokens). Both are set through the
// same SetPassword; issue 16's admin reset issues PurposeReset.
const (
	PurposeInvite = "invite"
	PurposeReset  = "reset"
)

// DefaultInviteTTL is how long an invite's set-password token works: three days.
const DefaultInviteTTL = 72 * time.Hour

// DefaultResetTTL is how long an admin reset's set-password token works: one hour.
const DefaultResetTTL = time.Hour
