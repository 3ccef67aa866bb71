package broker

import (
	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/xdg-go/scram"
)

// Mechanism is the SASL mechanism of every principal of the embedded broker: SCRAM, so a
// password never crosses the wire even without TLS.
const Mechanism = "SCRAM-SHA-512"

// User is a principal of the embedded broker (SASL user "User:<Name>").
type User struct {
	Name, Password string
	// Super bypasses every ACL: the operator's principal, never a service's.
	Super bool
	// Grants are what the user may do; anything not granted is refused.
	Grants []Grant
}

// Resource is what a grant is about.
type Resource int

// The resources a grant names.
const (
	Topic Resource = iota
	Group
)

// Op is an operation a grant allows. Read and Write imply Describe (Kafka's rule).
type Op int

// The operations the platform grants.
const (
	Read Op = iota
	Write
	Create
	Describe
	DescribeConfigs
)

// Grant allows Ops on a topic or group, by literal name or (Prefix) every name that starts
// with Name. Kafka ACLs match no suffixes: that is why reply topics are
// "<principal>.replies" and the analytics groups share a prefix.
type Grant struct {
	Resource Resource
	Name     string
	Prefix   bool
	Ops      []Op
}

// kfakeOpts turns users into kfake's SASL users, superusers and seed ACLs.
func kfakeOpts(users []User) []kfake.Opt {
	if len(users) == 0 {
		return nil
	}
	opts := []kfake.Opt{kfake.EnableSASL(), kfake.EnableACLs()}
	for _, u := range users {
		if u.Super {
			opts = append(opts, kfake.Superuser(Mechanism, u.Name, u.Password))
			continue
		}
		var acls []kfake.ACL
		for _, g := range u.Grants {
			rt, pat := kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeLiteral
			if g.Resource == Group {
				rt = kmsg.ACLResourceTypeGroup
			}
			if g.Prefix {
				pat = kmsg.ACLResourcePatternTypePrefixed
			}
			for _, op := range g.Ops {
				acls = append(acls, kfake.ACL{Resource: rt, Name: g.Name, Pattern: pat, Operation: kafkaOps[op], Allow: true})
			}
		}
		opts = append(opts, kfake.User(Mechanism, u.Name, u.Password, acls...))
	}
	return opts
}

var kafkaOps = map[Op]kmsg.ACLOperation{
	Read: kmsg.ACLOperationRead, Write: kmsg.ACLOperationWrite, Create: kmsg.ACLOperationCreate,
	Describe: kmsg.ACLOperationDescribe, DescribeConfigs: kmsg.ACLOperationDescribeConfigs,
}

// Login makes cfg's connections authenticate as user with Mechanism and returns cfg: the one
// place a sarama client is given a principal (kafkatransport.Security, brokertest).
func Login(cfg *sarama.Config, user, password string) *sarama.Config {
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
	cfg.Net.SASL.User, cfg.Net.SASL.Password = user, password
	cfg.Net.SASL.SCRAMClientGeneratorFunc = NewSCRAMClient
	return cfg
}

// NewSCRAMClient is the client side of Mechanism for sarama
// (Config.Net.SASL.SCRAMClientGeneratorFunc), on xdg-go/scram: sarama ships none.
func NewSCRAMClient() sarama.SCRAMClient { return &scramClient{} }

type scramClient struct{ conv *scram.ClientConversation }

func (c *scramClient) Begin(user, password, authzID string) error {
	cl, err := scram.SHA512.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = cl.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

func (c *scramClient) Done() bool { return c.conv.Done() }
