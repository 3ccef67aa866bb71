package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pms/pms/pkg/platform/broker"
	kafkatransport "github.com/pms/pms/transport/kafka"
)

// kafkaCredentials are the Kafka principals' passwords, as the credentials file holds them.
type kafkaCredentials map[string]string

// maxCredentialsFile bounds the credentials file: a handful of short lines.
const maxCredentialsFile = 64 << 10

// readCredentials reads a credentials file: one "<principal> <password>" a line, blank lines
// and lines starting with # ignored.
func readCredentials(path string) (kafkaCredentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--kafka-credentials: %w", err)
	}
	if len(b) > maxCredentialsFile {
		return nil, fmt.Errorf("--kafka-credentials %s: larger than %d bytes", path, maxCredentialsFile)
	}
	creds := kafkaCredentials{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			// The line is not quoted: it may hold a password.
			return nil, fmt.Errorf("--kafka-credentials %s: line %d: want \"<principal> <password>\"", path, n)
		}
		creds[f[0]] = f[1]
	}
	return creds, nil
}

// ensureCredentials reads path and gives every principal missing from it a random password,
// writing the file back (mode 0600, atomically) when it added one: the embedded broker's
// principals are created on its first start and kept from then on.
func ensureCredentials(path string, principals []string) (kafkaCredentials, error) {
	creds, err := readCredentials(path)
	if errors.Is(err, fs.ErrNotExist) {
		creds, err = kafkaCredentials{}, nil
	}
	if err != nil {
		return nil, err
	}
	added := false
	for _, p := range principals {
		if creds[p] != "" {
			continue
		}
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		creds[p], added = base64.RawURLEncoding.EncodeToString(b), true
	}
	if !added {
		return creds, nil
	}
	var buf strings.Builder
	buf.WriteString("# Kafka principals of the embedded broker (SASL/SCRAM-SHA-512): \"<principal> <password>\".\n")
	names := make([]string, 0, len(creds))
	for p := range creds {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, p := range names {
		fmt.Fprintf(&buf, "%s %s\n", p, creds[p])
	}
	return creds, writePrivate(path, []byte(buf.String()))
}

// writePrivate writes b to path with mode 0600 (its folder 0700 when created) by renaming a
// temporary file, so a reader never sees half a file.
func writePrivate(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// brokerUsers are the embedded broker's principals with their grants (kafkatransport.Grants):
// the admin as superuser, every other principal held by creds.
func brokerUsers(creds kafkaCredentials) []broker.User {
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
// it at every deployment, before the services (compose's kafka-setup service does).
func runKafka(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "setup" {
		return errors.New("usage: pms kafka setup --kafka-brokers host:port --kafka-credentials FILE")
	}
	s, err := parseCommand("kafka setup", args[1:], stderr, nil)
	if err != nil {
		return err
	}
	if len(s.kafka.brokers) == 0 || s.kafka.credentials == "" {
		return errors.New("pms kafka setup needs --kafka-brokers and --kafka-credentials")
	}
	creds, err := ensureCredentials(s.kafka.credentials, kafkatransport.Principals())
	if err != nil {
		return err
	}
	admin := kafkatransport.PrincipalAdmin
	cfg := kafkatransport.Security{TLS: s.kafka.clientTLS, User: admin, Password: creds[admin]}.Apply(kafkatransport.NewConfig("pms-kafka-setup"))
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := kafkatransport.Setup(ctx, s.kafka.brokers, cfg, creds, s.kafka.partitions, s.kafka.replication)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kafka setup: %d principals, %d ACLs, %d topics\n", res.Principals, res.ACLs, res.Topics)
	return nil
}
