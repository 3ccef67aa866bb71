package auth

import (
	"context"

	"github.com/pms/pms/pkg/platform/audit"
)

// ActionVerifyAudit is the audit action of a verification of the audit chain.
const ActionVerifyAudit = "audit.verify"

// VerifyAuditRequest asks for the audit chain's verdict; it has no parameters.
type VerifyAuditRequest struct{}

// VerifyAudit walks auth's audit chain (audit.VerifyTable) and returns its verdict, the one
// `pms audit verify --service auth` prints; a broken chain is a verdict (ok false, the first
// bad seq), not an error. The verification is itself audited, after the walk.
func (s *service) VerifyAudit(ctx context.Context) (audit.Report, error) {
	rep, err := audit.VerifyTable(ctx, s.store.db, AuditTable, "auth")
	return auditedRead(s, ctx, ActionVerifyAudit, "", rep, err)
}
