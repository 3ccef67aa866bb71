package main

import (
	"context"
	"crypto/ed25519"

	"github.com/pms/pms/pkg/platform/audit"
)

// auditTopicCheck is how the unit's GET /audit/verify?againstTopic=true (and gRPC
// VerifyAudit with against_topic) compares its chain with the audit topic: a short-lived
// client of the unit's own Kafka principal reads the topic from its beginning to its current
// end (the read `pms audit verify --against-topic` makes, audit.ReadTopic), and the
// checkpoints verify with the unit's key ring. nil for a unit without Kafka; call it only for
// units that publish their chain (auth, patient, billing, gateway).
func (u *unit) auditTopicCheck() *audit.TopicCheck {
	if u.kafka == nil {
		return nil
	}
	name, k, keyFile := u.name, u.kafka, u.s.checkpointKeyFile(u.name)
	return &audit.TopicCheck{
		Read: func(ctx context.Context) (map[string]*audit.Published, error) {
			return readAuditTopicWith(ctx, k.brokers, k.config("pms-"+name+"-audit-verify"), []string{name})
		},
		Keys: func() (map[string]ed25519.PublicKey, error) { return audit.CheckpointPublicKeys(keyFile) },
	}
}
