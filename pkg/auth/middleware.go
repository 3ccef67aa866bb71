package auth

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pms/pms/pkg/platform/errs"
)

// Middleware decorates a Service; endpoint middleware (pkg/platform/observe) already logs
// and times every call, so service middleware counts business events.
type Middleware func(Service) Service

// Metrics are the auth service's business counters.
type Metrics struct {
	logins    *prometheus.CounterVec
	refreshes *prometheus.CounterVec
	users     *prometheus.CounterVec
	hashes    prometheus.Counter
}

// NewMetrics registers the business counters on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "auth", Name: "logins_total",
			Help: "Login attempts by result: ok, unauthenticated (bad credentials), rate_limited (throttled before hashing), ...",
		}, []string{"result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "auth", Name: "refreshes_total",
			Help: "Refresh token rotations by result.",
		}, []string{"result"}),
		users: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "auth", Name: "user_changes_total",
			Help: "User changes by change (created, invited, updated, password_set, password_changed, password_reset, mfa_confirmed, mfa_disabled, session_deleted, logout_all) and result.",
		}, []string{"change", "result"}),
		hashes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "auth", Name: "password_hashes_total",
			Help: "Password hashes computed (hashing and verifying), the expensive part of a login.",
		}),
	}
	reg.MustRegister(m.logins, m.refreshes, m.users, m.hashes)
	return m
}

// Instrumenting returns middleware that counts logins, refreshes and user changes by result.
func (m *Metrics) Instrumenting() Middleware {
	return func(next Service) Service { return &instrumented{Service: next, m: m} }
}

// CountingHasher returns h counting every hash it computes in
// pms_auth_password_hashes_total, which makes "throttled before any hash" observable.
func (m *Metrics) CountingHasher(h Hasher) Hasher { return &countingHasher{Hasher: h, n: m.hashes} }

type countingHasher struct {
	Hasher
	n prometheus.Counter
}

func (h *countingHasher) Hash(ctx context.Context, password string) (string, error) {
	h.n.Inc()
	return h.Hasher.Hash(ctx, password)
}

func (h *countingHasher) Verify(ctx context.Context, encoded, password string) (bool, error) {
	h.n.Inc()
	return h.Hasher.Verify(ctx, encoded, password)
}

type instrumented struct {
	Service
	m *Metrics
}

func (s *instrumented) Login(ctx context.Context, req LoginRequest) (TokenPair, error) {
	p, err := s.Service.Login(ctx, req)
	s.m.logins.WithLabelValues(errs.Label(err)).Inc()
	return p, err
}

func (s *instrumented) Refresh(ctx context.Context, req RefreshRequest) (TokenPair, error) {
	p, err := s.Service.Refresh(ctx, req)
	s.m.refreshes.WithLabelValues(errs.Label(err)).Inc()
	return p, err
}

func (s *instrumented) CreateUser(ctx context.Context, req CreateUserRequest) (CreatedUser, error) {
	u, err := s.Service.CreateUser(ctx, req)
	change := "created"
	if req.Password == "" {
		change = "invited"
	}
	s.m.users.WithLabelValues(change, errs.Label(err)).Inc()
	return u, err
}

func (s *instrumented) SetPassword(ctx context.Context, req SetPasswordRequest) error {
	err := s.Service.SetPassword(ctx, req)
	s.m.users.WithLabelValues("password_set", errs.Label(err)).Inc()
	return err
}

func (s *instrumented) ChangePassword(ctx context.Context, req ChangePasswordRequest) error {
	err := s.Service.ChangePassword(ctx, req)
	s.m.users.WithLabelValues("password_changed", errs.Label(err)).Inc()
	return err
}

func (s *instrumented) ResetPassword(ctx context.Context, req ResetPasswordRequest) (ResetPassword, error) {
	r, err := s.Service.ResetPassword(ctx, req)
	s.m.users.WithLabelValues("password_reset", errs.Label(err)).Inc()
	return r, err
}

func (s *instrumented) UpdateUser(ctx context.Context, req UpdateUserRequest) (User, error) {
	u, err := s.Service.UpdateUser(ctx, req)
	s.m.users.WithLabelValues("updated", errs.Label(err)).Inc()
	return u, err
}

func (s *instrumented) DeleteSession(ctx context.Context, req DeleteSessionRequest) error {
	err := s.Service.DeleteSession(ctx, req)
	s.m.users.WithLabelValues("session_deleted", errs.Label(err)).Inc()
	return err
}

func (s *instrumented) LogoutAll(ctx context.Context) error {
	err := s.Service.LogoutAll(ctx)
	s.m.users.WithLabelValues("logout_all", errs.Label(err)).Inc()
	return err
}
