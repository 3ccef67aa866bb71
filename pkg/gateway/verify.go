package gateway

import (
	"context"
	"net/http"

	"github.com/pms/pms/pkg/gateway/openapi"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/op"
	"github.com/pms/pms/pkg/platform/typed"
	httptransport "github.com/pms/pms/transport/http"
)

// MethodVerifyAudit is the gateway's own operation: the verdict of its audit chain
// (GET /api/gateway/audit/verify), admin only, as every service serves its own.
const MethodVerifyAudit = "VerifyAudit"

// auditVerifyMethod is the method name of every service's audit verification (the
// services' MethodVerifyAudit, and the gateway's own): the upstream wrap treats it apart.
const auditVerifyMethod = MethodVerifyAudit

// ActionVerifyAudit is its audit action in the gateway's log, named after the gateway as the
// entries of the routes it guards are named after their service ("gateway.audit.verify").
const ActionVerifyAudit = "audit.verify"

// Ops is the gateway's own operation table: the routes it serves itself, not an upstream's.
var Ops = op.Table{
	{Name: MethodVerifyAudit, Roles: []string{authz.RoleAdmin}, Action: ActionVerifyAudit},
}

// VerifyAuditRequest asks for the gateway's audit-chain verdict, against the audit topic too
// with AgainstTopic (Config.AuditTopic).
type VerifyAuditRequest struct{ AgainstTopic bool }

// verifyHandler serves GET /api/gateway/audit/verify over the gateway's own database: the
// verdict `pms audit verify --service gateway` prints, behind the gateway's own middleware
// (metrics, logging, the JWT and role check with refusals audited, the client rate limit).
// The verification is itself audited in the gateway's log, and the verdict served only once
// that entry is written.
func (b *builder) verifyHandler(d *db.DB, log audit.Appender) (http.Handler, *[]openapi.Route) {
	log = serviceAudit{log: log, service: "gateway"}
	guard := authz.NewGuard(b.c.Verifier, Ops.Roles(), audit.Denied(log, Ops.Actions(), nil))
	rec := audit.Recorder{W: log, Logger: b.c.Logger}
	verify := typed.Endpoint(func(ctx context.Context, r VerifyAuditRequest) (audit.Report, error) {
		rep, err := audit.VerifyService(ctx, d, AuditTable, "gateway", r.AgainstTopic, b.c.AuditTopic)
		return audit.Read(rec, ctx, ActionVerifyAudit, "", rep, err)
	})
	name := "gateway." + MethodVerifyAudit
	e := typed.Chain(verify,
		b.metrics.Middleware(name),
		observe.LoggingMiddleware(b.c.Logger, name),
		guard.Middleware(MethodVerifyAudit),
		b.limiter.middleware(),
		deadline(b.c.Timeout),
	)
	return b.handler(func(o httptransport.Options) http.Handler {
		return httptransport.NewVerifyAuditHandler[VerifyAuditRequest](e, o)
	}, "/api/gateway")
}
