package kafkatransport

import "github.com/pms/pms/pkg/platform/audit"

// TopicAudit is the topic of every service's audit entries.
const TopicAudit = audit.Topic

// topicsOf describes the named topics, each with the same partitions and replication, for
// EnsureTopics: each service's Topics function lists its own through it.
func topicsOf(partitions int32, replication int16, names ...string) []Topic {
	out := make([]Topic, len(names))
	for i, n := range names {
		out[i] = Topic{Name: n, Partitions: partitions, ReplicationFactor: replication}
	}
	return out
}

// GatewayTopics are the topics the gateway creates at start-up: the audit topic, where its
// own audit entries go (issue 17).
func GatewayTopics(partitions int32, replication int16) []Topic {
	return topicsOf(partitions, replication, TopicAudit)
}
