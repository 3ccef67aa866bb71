package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"google.golang.org/grpc"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/outbox"
	grpctransport "github.com/pms/pms/transport/grpc"
	httptransport "github.com/pms/pms/transport/http"
	kafkatransport "github.com/pms/pms/transport/kafka"
)

// authConfig is the auth service's own settings.
type authConfig struct {
	httpAddr, grpcAddr, adminAddr, databaseURL string
	keyFile                                    string
	refreshTTL, inviteTTL, resetTTL            time.Duration
	refreshIdle, deviceTTL                     time.Duration
	accountAttempts, addressAttempts           int
	window, lockout, maxLockout                time.Duration
	hashConcurrency                            int
	bootstrapEmail                             string
	mfaKeyFile                                 string
	requireMFARoles                            []string
}

// register defines the auth flags; prefix is "" for `pms auth` and "auth-" for `pms all`.
// The environment twins are the same either way.
func (c *authConfig) register(f *flags, prefix string) {
	f.String(&c.httpAddr, prefix+"http-addr", "127.0.0.1:4005", "auth HTTP API address", "PMS_AUTH_HTTP_ADDR")
	f.String(&c.grpcAddr, prefix+"grpc-addr", "127.0.0.1:9005", "auth gRPC address (its twin is also the address pms gateway dials)", "PMS_AUTH_GRPC_ADDR")
	f.String(&c.adminAddr, prefix+"admin-addr", "127.0.0.1:4105", "auth admin address (metrics, health; pprof with --pprof)", "PMS_AUTH_ADMIN_ADDR")
	c.registerStorage(f)
	f.Duration(&c.refreshTTL, "refresh-token-ttl", auth.DefaultRefreshTTL, "a login's lifetime: its refresh tokens, however often rotated, stop this long after it", "PMS_AUTH_REFRESH_TOKEN_TTL").positive()
	f.Duration(&c.inviteTTL, "auth-invite-ttl", auth.DefaultInviteTTL, "how long an invited user's one-time set-password token works (a user created without a password)", "PMS_AUTH_INVITE_TTL").positive()
	f.Duration(&c.resetTTL, "auth-reset-ttl", auth.DefaultResetTTL, "how long an admin password reset's one-time set-password token works", "PMS_AUTH_RESET_TTL").positive()
	f.Int(&c.accountAttempts, "login-account-attempts", 5, "failed logins per account (email) within --login-window before a lock-out", "PMS_AUTH_LOGIN_ACCOUNT_ATTEMPTS").atLeast(1)
	f.Int(&c.addressAttempts, "login-address-attempts", auth.DefaultAddressAttempts, "failed logins from unknown devices per client address within --login-window before a lock-out (high: a clinic's staff may share one NAT address)", "PMS_AUTH_LOGIN_ADDRESS_ATTEMPTS").atLeast(1)
	f.Duration(&c.refreshIdle, "auth-refresh-idle", auth.DefaultRefreshIdle, "a session not refreshed for this long ends (besides --refresh-token-ttl)", "PMS_AUTH_REFRESH_IDLE").positive()
	f.Duration(&c.deviceTTL, "auth-device-ttl", auth.DefaultDeviceTTL, "how long a device stays known (its failed logins throttled apart from strangers') after its last successful login", "PMS_AUTH_DEVICE_TTL").positive()
	f.Duration(&c.window, "login-window", 15*time.Minute, "how long failed logins are remembered", "PMS_AUTH_LOGIN_WINDOW").positive()
	f.Duration(&c.lockout, "login-lockout", time.Minute, "the first lock-out; each further one in a row doubles it", "PMS_AUTH_LOGIN_LOCKOUT").positive()
	f.Duration(&c.maxLockout, "login-max-lockout", time.Hour, "the longest lock-out (lock-outs are never permanent)", "PMS_AUTH_LOGIN_MAX_LOCKOUT").positive()
	f.Int(&c.hashConcurrency, "password-hash-concurrency", 0, "password hashes computed at once, 19 MiB each (0: one per CPU)", "PMS_AUTH_PASSWORD_HASH_CONCURRENCY").atLeast(0)
	f.String(&c.mfaKeyFile, "auth-mfa-key-file", "", "the key that seals TOTP secrets at rest, AES-256 (default <data-dir>/"+auth.MFAKeyFileName+", created on first start, mode 0600; back it up with the database)", "PMS_AUTH_MFA_KEY_FILE")
	f.list(newList(&c.requireMFARoles, parseRole), prefix+"require-mfa-roles", "", "roles that must log in with a second factor (TOTP), comma-separated, e.g. admin: such a user without one enrols at its next login", []string{"PMS_AUTH_REQUIRE_MFA_ROLES"})
	f.String(&c.bootstrapEmail, "bootstrap-admin-email", "admin@pms.local", "email of the admin created on first start (password: PMS_BOOTSTRAP_ADMIN_PASSWORD, or generated and printed once)", "PMS_BOOTSTRAP_ADMIN_EMAIL")
}

// registerStorage defines the flags every auth command needs: its database and key file.
func (c *authConfig) registerStorage(f *flags) {
	f.String(&c.databaseURL, "auth-database-url", "", "auth database URL (overrides --database-url)", "PMS_AUTH_DATABASE_URL")
	f.String(&c.keyFile, "jwt-key-file", "", "the signing key ring (default <data-dir>/"+auth.KeyFileName+", created on first start, mode 0600)", "PMS_JWT_KEY_FILE")
}

// parseRole accepts one of the roles (for --require-mfa-roles).
func parseRole(s string) (string, error) {
	if r := strings.TrimSpace(s); authz.ValidRole(r) {
		return r, nil
	}
	return "", fmt.Errorf("%q is not a role (admin, clinician, billing, analyst)", s)
}

// mfaKeyPath is the MFA sealing key's file.
func (c authConfig) mfaKeyPath(s settings) string {
	if c.mfaKeyFile != "" {
		return c.mfaKeyFile
	}
	return filepath.Join(s.dataDir, filepath.FromSlash(auth.MFAKeyFileName))
}

// keyPath is the key ring's file.
func (c authConfig) keyPath(s settings) string {
	if c.keyFile != "" {
		return c.keyFile
	}
	return filepath.Join(s.dataDir, auth.KeyFileName)
}

// options turns the (checked) flags into the service options.
func (c authConfig) options(s settings) auth.Options {
	return auth.Options{Issuer: s.jwtIssuer, Audience: s.jwtAudience, RefreshTTL: c.refreshTTL, InviteTTL: c.inviteTTL, ResetTTL: c.resetTTL,
		Throttle: auth.ThrottleOptions{AccountAttempts: c.accountAttempts, AddressAttempts: c.addressAttempts,
			Window: c.window, Lockout: c.lockout, MaxLockout: c.maxLockout},
		MFA: auth.MFAOptions{RequireRoles: c.requireMFARoles}, Sessions: auth.SessionOptions{Idle: c.refreshIdle, DeviceTTL: c.deviceTTL}}
}

// bootstrapPassword is where the first admin's password comes from: the environment only,
// never a flag (flags show in process listings).
const bootstrapPasswordEnv = "PMS_BOOTSTRAP_ADMIN_PASSWORD"

// buildAuth wires the auth service (unit): its key ring, outbox and audit writer, the service
// and its middleware, the first admin, the endpoint set (guarded with the ring itself: no
// HTTP to itself), its HTTP and gRPC servers (the revocation stream too) and the
// auth.commands consumer. It returns the key ring and revocation table too, so `pms all` can
// hand them to the other services' verifiers. A generated
// bootstrap password is written to stderr, once.
func buildAuth(ctx context.Context, s settings, c authConfig, stderr io.Writer) (*module, inProcessAuth, error) {
	o := c.options(s)
	keys, created, err := auth.OpenKeyRing(c.keyPath(s), auth.KeyRingOptions{Logger: s.logger})
	if err != nil {
		return nil, inProcessAuth{}, err
	}
	u, err := newUnit(ctx, s, unitSpec{name: "auth", databaseURL: c.databaseURL, migrations: migrations.Auth(),
		topics: kafkatransport.AuthTopics(s.kafka.partitions, s.kafka.replication)})
	if err != nil {
		return nil, inProcessAuth{}, err
	}
	if created {
		kid, _ := keys.SigningKey()
		_ = level.Info(u.logger).Log("msg", "generated a signing key", "kid", kid, "path", keys.Path())
	}
	fail := func(err error) (*module, inProcessAuth, error) {
		_, err = u.fail(err)
		return nil, inProcessAuth{}, err
	}
	mfaKey, created, err := auth.OpenMFAKey(c.mfaKeyPath(s))
	if err != nil {
		return fail(fmt.Errorf("--auth-mfa-key-file: %w", err))
	}
	if created {
		_ = level.Info(u.logger).Log("msg", "generated the MFA sealing key", "path", c.mfaKeyPath(s))
	}
	o.MFA.Key = mfaKey
	writer, err := u.audit(auth.AuditTable, outbox.New(u.db, outbox.Options{}))
	if err != nil {
		return fail(err)
	}
	metrics := auth.NewMetrics(u.reg)
	o.Logger, o.Hasher = u.logger, metrics.CountingHasher(auth.NewArgon2id(auth.DefaultArgon2id, c.hashConcurrency))
	o.AuditTopic = u.auditTopicCheck()
	store := auth.NewStore(u.db)
	// A database brought back to an earlier point (a restore, a PostgreSQL point-in-time
	// recovery) lost the revocations made since: every session ends and the signing key is
	// replaced before anything is served (docs/operations.md, "Sessions").
	store.UseRewindMark(auth.OpenRewindMark(filepath.Join(s.dataDir, auth.RewindFileName)))
	if rewound, n, err := store.RecoverIfRewound(ctx, keys.Path(), time.Now()); err != nil {
		return fail(fmt.Errorf("recovering from a rewound auth database: %w", err))
	} else if rewound {
		if keys, _, err = auth.OpenKeyRing(c.keyPath(s), auth.KeyRingOptions{Logger: s.logger}); err != nil {
			return fail(err)
		}
		_ = level.Warn(u.logger).Log("msg", "the auth database is behind its revocations mark (restored to an earlier point): every session ended, the signing key replaced", "refresh_tokens_revoked", n)
	}
	core, err := auth.NewService(ctx, store, keys, writer, o)
	if err != nil {
		return fail(err)
	}
	svc := metrics.Instrumenting()(core)
	bootstrapPassword, _, err := lookupEnv(bootstrapPasswordEnv)
	if err != nil {
		return fail(err)
	}
	if err := bootstrapAdmin(ctx, u.logger, store, svc, c.bootstrapEmail, bootstrapPassword, stderr); err != nil {
		return fail(err)
	}
	// The revocation list: polled from the database (so any replica's revocations are
	// served), streamed to every verifier, and obeyed by this service's own guard.
	feed := auth.NewRevocationFeed(store, 0, 0)
	go feed.Run(ctx)
	revocations := authz.NewDenyTable(s.revocationsStale)
	go feed.Follow(ctx, revocations, u.logger)
	verifier := authz.NewVerifier(keys, s.jwtIssuer, s.jwtAudience).WithRevocations(revocations)
	set := auth.NewEndpoints(svc, u.endpoints(verifier, auth.Ops, auth.DeniedAuditor(writer)))
	u.commands(auth.TopicCommands, kafkatransport.AuthCommands(set), verifier)
	u.retain(ctx, idempotency.RepliesTable)
	u.m.endpoints = set
	m, err := u.serve(ctx, listenAddrs{c.httpAddr, c.grpcAddr, c.adminAddr},
		httptransport.NewAuthHandler(set, httptransport.Options{Logger: u.logger, TrustedProxies: s.trustedProxies}),
		func(g *grpc.Server) {
			grpctransport.RegisterAuthServer(g, set)
			grpctransport.RegisterRevocationServer(g, feed)
		})
	return m, inProcessAuth{keys: keys, revocations: revocations}, err
}

// inProcessAuth is what `pms all` hands the other services from its auth service: the key
// ring to verify with and the revocation table to obey.
type inProcessAuth struct {
	keys        *auth.KeyRing
	revocations *authz.DenyTable
}

// bootstrapAdmin creates the first admin on an empty user table, writing a generated
// password to stderr once.
func bootstrapAdmin(ctx context.Context, logger log.Logger, store *auth.Store, svc auth.Service, email, password string, stderr io.Writer) error {
	u, generated, made, err := auth.BootstrapAdmin(ctx, store, svc, email, password)
	if err != nil || !made {
		return err
	}
	_ = level.Info(logger).Log("msg", "created the first admin", "user_id", u.ID)
	if generated != "" {
		fmt.Fprintf(stderr, "\npms auth: created the first admin %s with the generated password\n\n    %s\n\n"+
			"It is shown this once and works once: the first login answers password_change_required with a\n"+
			"challenge to set your own (POST /auth/password/set). Set %s to choose it instead.\n\n", u.Email, generated, bootstrapPasswordEnv)
	}
	return nil
}

// runAuth is `pms auth` (and `pms auth rotate-key`).
func runAuth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "rotate-key" {
		return runRotateKey(args[1:], stdout, stderr)
	}
	return runService[authConfig](ctx, "auth", args, stderr, func(ctx context.Context, s settings, c authConfig) (*module, error) {
		m, _, err := buildAuth(ctx, s, c, stderr)
		return m, err
	})
}

// runRotateKey is `pms auth rotate-key`: a new signing key; the old one stays listed in the
// JWKS (and trusted) until every token it signed has expired, so nobody is logged out.
// Running auth services pick the new key up from the file at their next signature.
func runRotateKey(args []string, stdout, stderr io.Writer) error {
	var ac authConfig
	var revoke bool
	s, err := parseCommand("auth rotate-key", args, stderr, func(f *flags) {
		ac.registerStorage(f)
		f.Bool(&revoke, "revoke", false, "drop the old key at once (a compromised key): its tokens stop verifying everywhere within --auth-jwks-refresh", "PMS_AUTH_ROTATE_REVOKE")
	})
	if err != nil {
		return err
	}
	newKid, oldKid, err := auth.RotateKeyFile(ac.keyPath(s), time.Now(), revoke)
	if err != nil {
		return err
	}
	if revoke {
		fmt.Fprintf(stdout, "new signing key %s; revoked %s (no longer trusted)\n", newKid, oldKid)
		return nil
	}
	fmt.Fprintf(stdout, "new signing key %s; retired %s (still trusted for %s)\n", newKid, oldKid, authz.AccessTokenTTL)
	return nil
}

// stdin is where `pms user create` reads a password from when PMS_USER_PASSWORD is unset.
var stdin io.Reader = os.Stdin

// userPasswordEnv holds the password of `pms user create`; never a flag.
const userPasswordEnv = "PMS_USER_PASSWORD"

// runUser is `pms user create --email --role`: a user added straight to the auth database
// (audited as "svc:cli"), the password from PMS_USER_PASSWORD or the first line of
// standard input.
func runUser(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: pms user create --email <email> --role <admin|clinician|billing|analyst> (password from " + userPasswordEnv + " or standard input)")
	}
	var ac authConfig
	var email, role string
	s, err := parseCommand("user create", args[1:], stderr, func(f *flags) {
		ac.registerStorage(f)
		f.StringVar(&email, "email", "", "the user's email")
		f.StringVar(&role, "role", "", "admin, clinician, billing or analyst")
	})
	if err != nil {
		return err
	}
	password, ok, err := lookupEnv(userPasswordEnv)
	if err != nil {
		return err
	}
	if !ok {
		line, err := bufio.NewReader(io.LimitReader(stdin, auth.MaxPasswordBytes+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading the password: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	}
	if password == "" {
		// CreateUser would invite the user instead; this command sets a password, and an
		// invite's token belongs to whoever administers users over the API.
		return errors.New("a password is required (" + userPasswordEnv + " or the first line of standard input); to invite a user without one, POST /api/users without a password")
	}
	d, err := openServiceDB(ctx, s, "auth", ac.databaseURL, migrations.Auth())
	if err != nil {
		return err
	}
	defer d.Close()
	// Its audit entry is chained like every other, so the audit topic has no gap in auth's
	// chain: a running auth service's relay publishes it from the table (audit.Tail).
	writer := audit.NewWriter(d, audit.Options{Table: auth.AuditTable, Service: "auth", Logger: s.logger})
	defer writer.Close(context.Background())
	svc, err := auth.NewService(ctx, auth.NewStore(d), nil, writer, auth.Options{Logger: s.logger})
	if err != nil {
		return err
	}
	u, err := svc.CreateUser(authz.Service(ctx, "cli"), auth.CreateUserRequest{Email: email, Password: password, Role: role})
	if err != nil {
		var e *errs.Error
		if errors.As(err, &e) && len(e.Fields) > 0 {
			return fmt.Errorf("%s: %s", e.Message, fieldMessages(e.Fields))
		}
		return err
	}
	fmt.Fprintf(stdout, "created user %s (%s, %s)\n", u.ID, u.Email, u.Role)
	return nil
}

// fieldMessages renders validation errors for a terminal, in a stable order.
func fieldMessages(fields map[string]string) string {
	names := strings.Split(errs.FieldList(fields), ",")
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + " " + fields[n]
	}
	return strings.Join(out, "; ")
}
