package analytics

// The topics the analytics service folds (API.md, "Kafka"); it publishes none and takes
// no commands.
const (
	TopicPatient = "patient"
	TopicBilling = "billing"
	TopicAudit   = "audit"
)

// Topics lists the folded topics.
var Topics = []string{TopicPatient, TopicBilling, TopicAudit}

// AuditCheckpoint is the event type of a service's signed audit-chain head on the audit topic
// (pkg/platform/audit.CheckpointEventType): not an access, so it moves no figure.
const AuditCheckpoint = "AUDIT_CHECKPOINT"
