package billing

import (
	"context"

	"github.com/pms/pms/pkg/platform/audit"
)

// ActionVerifyAudit is the audit action of a verification of the audit chain.
const ActionVerifyAudit = "audit.verify"

// VerifyAudit walks billing's audit chain (audit.Verify) and returns its verdict, the one
// `pms audit verify --service billing` prints; with audit.AgainstTopic(ctx) it also compares
// the chain with the audit topic (audit.VerifyService), as `--against-topic` does. A broken
// chain is a verdict (ok false, the first bad seq), not an error. The verification is itself
// audited, after the walk.
func (s *service) VerifyAudit(ctx context.Context) (audit.Report, error) {
	rep, err := audit.VerifyService(ctx, s.store.db, AuditTable, "billing", audit.AgainstTopic(ctx), s.topic)
	return readResult(s, ctx, ActionVerifyAudit, "", rep, err)
}
