package kafkatransport

import (
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/broker"
)

// The principals of the platform's Kafka besides the services (each of which is the
// principal of its own name, ServicePrincipals).
const (
	// PrincipalOperator is a person's command-line client (kcat): it sends commands, reads
	// its own replies and watches the event topics, and can write no event.
	PrincipalOperator = "operator"
	// PrincipalAdmin is the superuser: every ACL passes. No service uses it.
	PrincipalAdmin = "admin"
)

// ServicePrincipals are the services that talk to Kafka, each as the principal of its name.
var ServicePrincipals = []string{"auth", "patient", "billing", "analytics", "gateway"}

// Principals lists every principal of the platform: the services, the operator, the admin.
func Principals() []string {
	return append(append([]string{}, ServicePrincipals...), PrincipalOperator, PrincipalAdmin)
}

// RepliesOf is principal's reply topic: "<principal>.replies". Kafka ACLs match literal
// names and prefixes, never suffixes, so a reply topic named after its reader is what lets a
// literal ACL give each principal its own replies and nobody else's.
func RepliesOf(principal string) string { return principal + RepliesSuffix }

// Grants is the ACL table of the platform: what each principal may do on which topics and
// groups (docs/kafka.md, "Principals and ACLs"). principals are the ones whose reply topics
// the command-serving services may answer into. An unknown principal gets nothing. Every
// service that publishes its audit chain may also read the audit topic (ids and signed
// checkpoints, no PHI), with no consumer group: its GET /audit/verify?againstTopic=true reads
// the topic to compare its chain with it (docs/audit.md).
func Grants(principal string, principals []string) []broker.Grant {
	var replies []string
	for _, p := range principals {
		replies = append(replies, RepliesOf(p))
	}
	// A service may create the topics it creates at start-up (and read their settings).
	create := ops(broker.Create, broker.DescribeConfigs)
	var g grants
	switch principal {
	case "auth":
		g.topics(create, topicNames(AuthTopics(1, 1))...)
		g.topics(ops(broker.Read), auth.TopicCommands, RepliesOf(principal), TopicAudit)
		g.topics(ops(broker.Write), TopicAudit, auth.TopicEvents, auth.TopicCommands+DLQSuffix)
		g.topics(ops(broker.Write), replies...)
		g.group("auth", false)
	case "patient":
		g.topics(create, topicNames(PatientTopics(1, 1))...)
		g.topics(ops(broker.Read), patient.TopicCommands, RepliesOf(principal), TopicAudit)
		g.topics(ops(broker.Write), patient.TopicEvents, TopicAudit, patient.TopicCommands+DLQSuffix)
		g.topics(ops(broker.Write), replies...)
		g.group("patient", false)
	case "billing":
		g.topics(create, topicNames(BillingTopics(1, 1))...)
		g.topics(ops(broker.Read), billing.TopicCommands, patient.TopicEvents, RepliesOf(principal), TopicAudit)
		g.topics(ops(broker.Write), billing.TopicEvents, TopicAudit, billing.TopicCommands+DLQSuffix, patient.TopicEvents+DLQSuffix)
		g.topics(ops(broker.Write), replies...)
		g.group("billing", false)
		g.group(BillingPatientGroup, false)
	case "analytics":
		g.topics(create, topicNames(AnalyticsTopics(1, 1))...)
		g.topics(ops(broker.Read), analytics.Topics...)
		for _, t := range analytics.Topics {
			g.topics(ops(broker.Write), t+DLQSuffix)
		}
		g.group(AnalyticsGroupPrefix, true)
	case "gateway":
		// The gateway publishes the audit entries of the calls it refuses itself.
		g.topics(create, topicNames(GatewayTopics(1, 1))...)
		g.topics(ops(broker.Write), TopicAudit)
		g.topics(ops(broker.Read), TopicAudit)
	case PrincipalOperator:
		g.topics(ops(broker.Write), patient.TopicCommands, billing.TopicCommands, auth.TopicCommands)
		g.topics(ops(broker.Read), RepliesOf(principal), auth.TopicEvents)
		g.topics(ops(broker.Read), analytics.Topics...)
		g.group(PrincipalOperator, true)
	}
	return g
}

// grants builds a principal's grant list.
type grants []broker.Grant

func ops(o ...broker.Op) []broker.Op { return o }

func (g *grants) topics(o []broker.Op, names ...string) {
	for _, n := range names {
		*g = append(*g, broker.Grant{Resource: broker.Topic, Name: n, Ops: o})
	}
}

func (g *grants) group(name string, prefix bool) {
	*g = append(*g, broker.Grant{Resource: broker.Group, Name: name, Prefix: prefix, Ops: ops(broker.Read)})
}

// topicNames are the names of topics.
func topicNames(topics []Topic) []string {
	out := make([]string, len(topics))
	for i, t := range topics {
		out[i] = t.Name
	}
	return out
}
