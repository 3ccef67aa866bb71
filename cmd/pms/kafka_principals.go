package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pms/pms/pkg/platform/broker"
	"github.com/pms/pms/pkg/platform/privfile"
	kafkatransport "github.com/pms/pms/transport/kafka"
)

// brokerUsers are the embedded broker's principals with their grants (kafkatransport.Grants):
// the admin as superuser, every other principal held by creds.
func brokerUsers(creds broker.Credentials) []broker.User {
	principals := kafkatransport.Principals()
	var users []broker.User
	for _, p := range principals {
		users = append(users, broker.User{Name: p, Password: creds[p], Super: p == kafkatransport.PrincipalAdmin,
			Grants: kafkatransport.Grants(p, principals)})
	}
	return users
}

// kcatConfig is a librdkafka configuration (kcat -F) for principal at the embedded broker.
func kcatConfig(addr, principal, password, caFile string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# kcat -F %s: the %q principal of the embedded broker (written by pms at each start).\n", "<this file>", principal)
	fmt.Fprintf(&b, "bootstrap.servers=%s\nsasl.mechanisms=%s\nsasl.username=%s\nsasl.password=%s\n", addr, broker.Mechanism, principal, password)
	if caFile != "" {
		fmt.Fprintf(&b, "security.protocol=SASL_SSL\nssl.ca.location=%s\n", caFile)
	} else {
		b.WriteString("security.protocol=SASL_PLAINTEXT\n")
	}
	return []byte(b.String())
}

// runKafka is `pms kafka setup`: the platform's principals (SCRAM-SHA-512 credentials from
// --kafka-credentials, created with random passwords when missing), the ACLs of
// kafkatransport.Grants and every topic, declared on the cluster of --kafka-brokers as its
// admin principal (the file's "admin" line, which must already exist there). Idempotent: run
// it at every deployment, before the services (compose's kafka-setup service does). Beside
// FILE it writes FILE.<principal> (0600) holding that principal's line alone, for a service
// that should hold no other password.
func runKafka(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "setup" {
		return errors.New("usage: pms kafka setup --kafka-brokers host:port --kafka-credentials FILE")
	}
	var adminPassword string
	s, err := parseCommand("kafka setup", args[1:], stderr, func(f *flags) {
		f.String(&adminPassword, "kafka-admin-password", "", "the admin principal's password when --kafka-credentials has no admin line yet (the one the cluster was formatted with)", "PMS_KAFKA_ADMIN_PASSWORD")
	})
	if err != nil {
		return err
	}
	if len(s.kafka.brokers) == 0 || s.kafka.credentials == "" {
		return errors.New("pms kafka setup needs --kafka-brokers and --kafka-credentials")
	}
	if known, _ := broker.ReadCredentials(s.kafka.credentials); known[kafkatransport.PrincipalAdmin] == "" && adminPassword == "" {
		return errors.New("pms kafka setup needs the admin principal's password: an admin line in --kafka-credentials, or --kafka-admin-password")
	}
	creds, err := broker.EnsureCredentials(s.kafka.credentials, kafkatransport.Principals(), broker.Credentials{kafkatransport.PrincipalAdmin: adminPassword})
	if err != nil {
		return fmt.Errorf("--kafka-credentials: %w", err)
	}
	if creds[kafkatransport.PrincipalAdmin] == "" || (adminPassword != "" && creds[kafkatransport.PrincipalAdmin] != adminPassword) {
		return errors.New("--kafka-credentials: the admin line must hold the password the cluster knows (--kafka-admin-password)")
	}
	admin := kafkatransport.PrincipalAdmin
	cfg := kafkatransport.Security{TLS: s.kafka.clientTLS, User: admin, Password: creds[admin]}.Apply(kafkatransport.NewConfig("pms-kafka-setup"))
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := kafkatransport.Setup(ctx, s.kafka.brokers, cfg, creds, s.kafka.partitions, s.kafka.replication, s.kafka.retention)
	if err != nil {
		return err
	}
	for _, p := range kafkatransport.Principals() {
		if p == kafkatransport.PrincipalAdmin {
			continue
		}
		if err := privfile.Write(s.kafka.credentials+"."+p, []byte(p+" "+creds[p]+"\n"), false); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "kafka setup: %d principals, %d ACLs, %d topics\n", res.Principals, res.ACLs, res.Topics)
	return nil
}
