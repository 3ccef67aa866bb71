package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	kafkatransport "github.com/pms/pms/transport/kafka"
)

// auditServices are the services whose audit chains `pms audit verify` walks; published says
// whether a service's entries and checkpoints go to the audit topic (analytics publishes
// nothing, so its chain is checked on its own). The gateway's log holds the calls it refuses.
var auditServices = []struct {
	name      string
	published bool
}{{"auth", true}, {"patient", true}, {"billing", true}, {"gateway", true}, {"analytics", false}}

// runAudit is `pms audit verify` and `pms audit rotate-key`.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "verify":
			return runAuditVerify(ctx, args[1:], stdout, stderr)
		case "rotate-key":
			return runAuditRotateKey(args[1:], stdout, stderr)
		}
	}
	return errors.New("usage: pms audit verify [--service NAME] [--against-topic] | pms audit rotate-key --service NAME")
}

// auditVerifyFlags are the flags of `pms audit verify`.
type auditVerifyFlags struct {
	service      string
	againstTopic bool
	timeout      time.Duration
	urls         map[string]*string
}

// runAuditVerify is `pms audit verify`: it walks each service's audit chain (or --service's)
// and prints one verdict per service as a JSON line, the same verdict GET /audit/verify
// answers; with --against-topic it also compares each chain with the entries and the signed
// checkpoints on the audit topic (read as the operator principal), so a rewrite that
// recomputes the chain is caught. It fails naming the first broken sequence number.
func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := auditVerifyFlags{urls: map[string]*string{}}
	s, err := parseCommand("audit verify", args, stderr, func(f *flags) {
		f.String(&fl.service, "service", "", "verify this service's chain only: auth, patient, billing, gateway or analytics (empty: all)", "PMS_AUDIT_SERVICE")
		f.Bool(&fl.againstTopic, "against-topic", false, "also compare the chains with the entries and signed checkpoints on the audit topic", "PMS_AUDIT_AGAINST_TOPIC")
		f.Duration(&fl.timeout, "timeout", 5*time.Minute, "how long the whole verification may take", "PMS_AUDIT_TIMEOUT").positive()
		for _, svc := range auditServices {
			u := new(string)
			fl.urls[svc.name] = u
			f.String(u, svc.name+"-database-url", "", svc.name+" database URL (overrides --database-url)", "PMS_"+strings.ToUpper(svc.name)+"_DATABASE_URL")
		}
	})
	if err != nil {
		return err
	}
	var names []string
	for _, svc := range auditServices {
		if fl.service == "" || fl.service == svc.name {
			names = append(names, svc.name)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("--service %q: want auth, patient, billing, gateway or analytics", fl.service)
	}
	ctx, cancel := context.WithTimeout(ctx, fl.timeout)
	defer cancel()
	var pub map[string]*audit.Published
	if fl.againstTopic {
		if pub, err = readAuditTopic(ctx, s); err != nil {
			return fmt.Errorf("--against-topic: %w", err)
		}
	}
	var broken []string
	enc := json.NewEncoder(stdout)
	for _, name := range names {
		rep, err := verifyService(ctx, s, name, *fl.urls[name], pub)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
		if !rep.OK {
			broken = append(broken, fmt.Sprintf("%s: the chain breaks at seq %d: %s", name, rep.FirstBadSeq, rep.Problem))
		}
	}
	if len(broken) > 0 {
		return errors.New("audit verify: " + strings.Join(broken, "; "))
	}
	return nil
}

// verifyService opens name's database (without migrating it) and verifies its chain, against
// pub when given and the service publishes its chain.
func verifyService(ctx context.Context, s settings, name, ownURL string, pub map[string]*audit.Published) (audit.Report, error) {
	d, err := db.Open(ctx, s.dbURL(ownURL, name), name)
	if err != nil {
		return audit.Report{}, err
	}
	defer d.Close()
	published := false
	for _, svc := range auditServices {
		published = published || (svc.name == name && svc.published)
	}
	if pub == nil || !published {
		return audit.VerifyTable(ctx, d, audit.DefaultTable, name)
	}
	keys, err := audit.CheckpointPublicKeys(s.checkpointKeyFile(name))
	if err != nil {
		return audit.Report{}, fmt.Errorf("the checkpoint keys: %w", err)
	}
	p := pub[name]
	if p == nil {
		p = &audit.Published{}
	}
	return audit.VerifyAgainst(ctx, d, audit.DefaultTable, name, *p, keys)
}

// readAuditTopic reads the audit topic from its first to its last message (every partition,
// up to the high-water mark it had when the read began) as the operator principal, and
// returns what it holds about each service's chain (audit.ReadTopic).
func readAuditTopic(ctx context.Context, s settings) (map[string]*audit.Published, error) {
	sec, _, err := s.kafka.security(kafkatransport.PrincipalOperator, s.dataDir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(auditServices))
	for i, svc := range auditServices {
		names[i] = svc.name
	}
	return readAuditTopicWith(ctx, s.kafka.brokerList(), sec.Apply(kafkatransport.NewConfig("pms-audit-verify")), names)
}

// readAuditTopicWith reads the audit topic with a client of cfg on brokers, made for this
// read and closed after it, for services (audit.ReadTopic). It returns when ctx ends even if
// the client is still connecting (which sarama does not bound by ctx); the read itself stops
// then too.
func readAuditTopicWith(ctx context.Context, brokers []string, cfg *sarama.Config, services []string) (map[string]*audit.Published, error) {
	type result struct {
		pub map[string]*audit.Published
		err error
	}
	done := make(chan result, 1)
	go func() {
		client, err := sarama.NewClient(brokers, cfg)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer client.Close()
		pub, err := audit.ReadTopic(ctx, client, services)
		done <- result{pub, err}
	}()
	select {
	case r := <-done:
		return r.pub, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// runAuditRotateKey is `pms audit rotate-key --service NAME`: a new checkpoint signing key for
// the service; the old one's public half stays in the ring for good, so the checkpoints it
// signed still verify. Running services pick the new key up at their next checkpoint.
func runAuditRotateKey(args []string, stdout, stderr io.Writer) error {
	var service string
	s, err := parseCommand("audit rotate-key", args, stderr, func(f *flags) {
		f.String(&service, "service", "", "the service whose checkpoint key to rotate: auth, patient, billing or gateway", "PMS_AUDIT_SERVICE")
	})
	if err != nil {
		return err
	}
	ok := false
	for _, svc := range auditServices {
		ok = ok || (svc.name == service && svc.published)
	}
	if !ok {
		return fmt.Errorf("--service %q: want auth, patient, billing or gateway", service)
	}
	newKid, oldKid, err := audit.RotateCheckpointKeyFile(s.checkpointKeyFile(service), time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: new checkpoint key %s; %s retired (its checkpoints still verify)\n", service, newKid, oldKid)
	return nil
}
