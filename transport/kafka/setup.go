package kafkatransport

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/platform/broker"
)

// SetupResult counts what Setup declared.
type SetupResult struct{ Principals, ACLs, Topics int }

// Setup prepares a Kafka cluster for the platform through admin, connected as a superuser:
// the SCRAM-SHA-512 credentials of every principal in passwords but the admin (whose own must
// already exist: it is how admin connected), the ACLs of Grants, every service's topics and
// every principal's reply topic. Each step is idempotent (an upsert, an ACL that exists, a
// topic that exists), so it runs at every deployment; an ACL no longer in the table is left
// for the operator to delete.
func Setup(ctx context.Context, brokers []string, cfg *sarama.Config, passwords map[string]string, partitions int32, replication int16, retention Retention) (SetupResult, error) {
	var res SetupResult
	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		return res, fmt.Errorf("kafka setup: connect: %w", err)
	}
	defer admin.Close()
	principals := Principals()
	var upserts []sarama.AlterUserScramCredentialsUpsert
	for _, p := range principals {
		if p == PrincipalAdmin {
			continue
		}
		if passwords[p] == "" {
			return res, fmt.Errorf("kafka setup: no password for the principal %q", p)
		}
		salt := make([]byte, 32)
		if _, err := rand.Read(salt); err != nil {
			return res, err
		}
		// 4096 iterations: Kafka's minimum and its tools' default; kfake (the embedded broker,
		// in the tests) announces 4096 whatever was stored, so another count fails there.
		upserts = append(upserts, sarama.AlterUserScramCredentialsUpsert{Name: p, Mechanism: sarama.SCRAM_MECHANISM_SHA_512,
			Iterations: 4096, Salt: salt, Password: []byte(passwords[p])})
	}
	results, err := admin.UpsertUserScramCredentials(upserts)
	if err != nil {
		return res, fmt.Errorf("kafka setup: credentials: %w", err)
	}
	for _, r := range results {
		if r.ErrorCode != sarama.ErrNoError {
			return res, fmt.Errorf("kafka setup: credentials of %s: %w", r.User, r.ErrorCode)
		}
	}
	res.Principals = len(upserts)

	var acls []*sarama.ResourceAcls
	for _, p := range principals {
		for _, g := range Grants(p, principals) {
			ra := &sarama.ResourceAcls{Resource: sarama.Resource{ResourceType: sarama.AclResourceTopic, ResourceName: g.Name,
				ResourcePatternType: sarama.AclPatternLiteral}}
			if g.Resource == broker.Group {
				ra.ResourceType = sarama.AclResourceGroup
			}
			if g.Prefix {
				ra.ResourcePatternType = sarama.AclPatternPrefixed
			}
			for _, op := range g.Ops {
				ra.Acls = append(ra.Acls, &sarama.Acl{Principal: "User:" + p, Host: "*", Operation: saramaOps[op], PermissionType: sarama.AclPermissionAllow})
			}
			acls = append(acls, ra)
			res.ACLs += len(ra.Acls)
		}
	}
	if err := admin.CreateACLs(acls); err != nil {
		return res, fmt.Errorf("kafka setup: ACLs: %w", err)
	}

	var topics []Topic
	seen := map[string]bool{}
	for _, t := range slices.Concat(AuthTopics(partitions, replication), PatientTopics(partitions, replication),
		BillingTopics(partitions, replication), AnalyticsTopics(partitions, replication)) {
		if !seen[t.Name] {
			seen[t.Name], topics = true, append(topics, t)
		}
	}
	for _, p := range principals {
		if !seen[RepliesOf(p)] {
			seen[RepliesOf(p)], topics = true, append(topics, Topic{Name: RepliesOf(p), Partitions: partitions, ReplicationFactor: replication})
		}
	}
	if err := EnsureTopics(ctx, brokers, cfg, WithRetention(topics, retention)); err != nil {
		return res, fmt.Errorf("kafka setup: %w", err)
	}
	res.Topics = len(topics)
	return res, nil
}

var saramaOps = map[broker.Op]sarama.AclOperation{
	broker.Read: sarama.AclOperationRead, broker.Write: sarama.AclOperationWrite, broker.Create: sarama.AclOperationCreate,
	broker.Describe: sarama.AclOperationDescribe, broker.DescribeConfigs: sarama.AclOperationDescribeConfigs,
}
