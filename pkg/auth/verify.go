package auth

import (
	"context"

	"github.com/pms/pms/pkg/platform/audit"
)

// ActionVerifyAudit is the audit action of a verification of the audit chain.
const ActionVerifyAudit = "audit.verify"

// VerifyAuditRequest asks for the audit chain's verdict, against the audit topic too with
// AgainstTopic.
type VerifyAuditRequest struct{ AgainstTopic bool }

// VerifyAudit walks auth's audit chain (audit.VerifyTable) and returns its verdict, the one
// `pms audit verify --service auth` prints; a broken chain is a verdict (ok false, the first
// bad seq), not an error. The verification is itself audited, after the walk.
//
// With audit.AgainstTopic(ctx) it also compares the chain with the audit topic
// (audit.VerifyService), as `--against-topic` does.
func (s *service) VerifyAudit(ctx context.Context) (audit.Report, error) {
	rep, err := audit.VerifyService(ctx, s.store.db, AuditTable, "auth", audit.AgainstTopic(ctx), s.topic)
	return auditedRead(s, ctx, ActionVerifyAudit, "", rep, err)
}
