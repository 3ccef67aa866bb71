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
