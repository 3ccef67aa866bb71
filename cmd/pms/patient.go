package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-kit/log/level"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/patient/match"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/shred"
	grpctransport "github.com/pms/pms/transport/grpc"
	httptransport "github.com/pms/pms/transport/http"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"google.golang.org/grpc"
)

// patientConfig is the patient service's own settings.
type patientConfig struct {
	httpAddr, grpcAddr, adminAddr, databaseURL string
	// billingAddr is billing's gRPC address: a flag of `pms patient`, the bound address of
	// billing's listener in `pms all`; empty runs without billing (its routes answer 503).
	billingAddr string
	// searchKeyFile is the HMAC key of search fingerprints (patient.LoadSearchKey).
	searchKeyFile string
	// dataKeyFile is the key-encryption key of the patients' data keys (shred.LoadKEK).
	dataKeyFile string
	// erasureJournal records erasures outside the database (patient.ErasureJournal).
	erasureJournal string
	// breakGlassTTL is how long an emergency grant on a restricted record lasts.
	breakGlassTTL time.Duration
	// duplicatePolicy and duplicateThreshold are the duplicate check of registrations
	// (patient.DuplicatePolicies; docs/matching.md, "At registration").
	duplicatePolicy    string
	duplicateThreshold float64
}

// register defines the patient flags; prefix is "" for `pms patient` and "patient-" for
// `pms all`. The environment twins are the same either way.
func (c *patientConfig) register(f *flags, prefix string) {
	f.String(&c.httpAddr, prefix+"http-addr", "127.0.0.1:4000", "patient HTTP API address", "PMS_PATIENT_HTTP_ADDR")
	f.String(&c.grpcAddr, prefix+"grpc-addr", "127.0.0.1:9000", "patient gRPC address (its twin is also the address pms gateway dials)", "PMS_PATIENT_GRPC_ADDR")
	f.String(&c.adminAddr, prefix+"admin-addr", "127.0.0.1:4100", "patient admin address (metrics, health; pprof with --pprof)", "PMS_PATIENT_ADMIN_ADDR")
	f.String(&c.databaseURL, "patient-database-url", "", "patient database URL (overrides --database-url)", "PMS_PATIENT_DATABASE_URL")
	f.String(&c.searchKeyFile, "patient-search-key-file", "", "the HMAC key of the search fingerprints in the audit log (default <data-dir>/"+patient.SearchKeyFileName+", created on first start, mode 0600); deleting or rotating it makes old fingerprints unlinkable to any query", "PMS_PATIENT_SEARCH_KEY_FILE")
	f.String(&c.dataKeyFile, "patient-data-key-file", "", "the key-encryption key of the patients' data keys, which seal the PHI of patient events (default <data-dir>/"+patient.DataKeyFileName+", created on first start, mode 0600); keep it out of database backups, and never lose it: without it no event opens", "PMS_PATIENT_DATA_KEY_FILE")
	f.String(&c.erasureJournal, "patient-erasure-journal", "", "the journal of erasures kept outside the database and its backups (default <data-dir>/"+patient.ErasureJournalFileName+"); on start every journalled erasure the database lacks (a restore from an older backup) is applied again; every replica must share it", "PMS_PATIENT_ERASURE_JOURNAL")
	f.Duration(&c.breakGlassTTL, "patient-break-glass-ttl", patient.DefaultBreakGlassTTL, "how long a break-glass grant (emergency access to a restricted patient record) lasts", "PMS_PATIENT_BREAK_GLASS_TTL").positive()
	f.String(&c.duplicatePolicy, "duplicate-policy", patient.DuplicatePolicyWarn, "the duplicate check of registrations: warn (register, answer X-Possible-Duplicates; 409 only under Prefer: duplicate-check=strict), block (409 possible_duplicate for every caller unless confirmed with X-Confirm-Not-Duplicate) or off", "PMS_PATIENT_DUPLICATE_POLICY")
	f.checks = append(f.checks, func() error {
		if !slices.Contains(patient.DuplicatePolicies, c.duplicatePolicy) {
			return fmt.Errorf("--duplicate-policy: want one of %s, got %q", strings.Join(patient.DuplicatePolicies, ", "), c.duplicatePolicy)
		}
		return nil
	})
	f.Float(&c.duplicateThreshold, "duplicate-threshold", match.DefaultThreshold, "the match score (0..1) from which a registered patient is a possible duplicate", "PMS_PATIENT_DUPLICATE_THRESHOLD").check(
		func(v float64) bool { return v > 0 && v <= 1 }, "a number in (0, 1]")
	if prefix == "" {
		f.String(&c.billingAddr, "billing-addr", "127.0.0.1:9001", "billing gRPC address the patient service calls, empty: no billing (its twin is also the billing service's bind address)", "PMS_BILLING_GRPC_ADDR")
	}
}

// buildPatient wires the patient service (unit): its store, audit writer and outbox, the
// client of billing, the service and its middleware, the endpoint set, its HTTP and gRPC
// servers and the patient.commands consumer.
func buildPatient(ctx context.Context, s settings, c patientConfig) (*module, error) {
	u, err := newUnit(ctx, s, unitSpec{name: "patient", databaseURL: c.databaseURL, migrations: migrations.Patient(), dbOptions: patient.DatabaseOptions(),
		topics: kafkatransport.PatientTopics(s.kafka.partitions, s.kafka.replication)})
	if err != nil {
		return nil, err
	}
	store := patient.NewStore(u.db)
	keyFile := c.searchKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(s.dataDir, patient.SearchKeyFileName)
	}
	searchKey, err := patient.LoadSearchKey(keyFile)
	if err != nil {
		return u.fail(err)
	}
	dataKeyFile := c.dataKeyFile
	if dataKeyFile == "" {
		dataKeyFile = filepath.Join(s.dataDir, patient.DataKeyFileName)
	}
	kek, err := shred.LoadKEK(dataKeyFile)
	if err != nil {
		return u.fail(err)
	}
	keys, err := shred.New(u.db, kek)
	if err != nil {
		return u.fail(err)
	}
	if err := keys.Check(ctx); err != nil {
		return u.fail(fmt.Errorf("patient data key file %s: %w", dataKeyFile, err))
	}
	store.UseKeys(keys)
	journalFile := c.erasureJournal
	if journalFile == "" {
		journalFile = filepath.Join(s.dataDir, patient.ErasureJournalFileName)
	}
	journal, err := patient.OpenErasureJournal(journalFile)
	if err != nil {
		return u.fail(err)
	}
	store.UseErasureJournal(journal)
	// A database restored from a backup older than an erasure must not bring the patient back.
	if n, err := store.ReapplyErasures(ctx); err != nil {
		return u.fail(err)
	} else if n > 0 {
		_ = level.Warn(u.logger).Log("msg", "erasures re-applied from the journal (the database predates them)", "count", n)
	}
	// Blocking keys of records registered before migration 00028 (or under an older scheme).
	if n, err := store.BackfillMatchKeys(ctx); err != nil {
		return u.fail(err)
	} else if n > 0 {
		_ = level.Info(u.logger).Log("msg", "duplicate-matching keys back-filled", "records", n)
	}
	disclosures := patient.NewDisclosures(u.db)
	u.auditWire = disclosures.Wire
	writer, err := u.audit(patient.AuditTable, store.Outbox())
	if err != nil {
		return u.fail(err)
	}
	metrics := patient.NewMetrics(u.reg)
	store.RegisterReadMetrics(u.reg)
	var bill patient.Billing
	if c.billingAddr != "" {
		b, closeConn, err := grpctransport.DialPatientBilling(c.billingAddr, s.clientTLS, u.logger, u.reg)
		if err != nil {
			return u.fail(err)
		}
		u.m.closers.add(closeConn)
		bill = metrics.Billing(b)
	}
	var svc patient.Service = patient.NewService(store, writer, patient.Options{Logger: u.logger, Billing: bill,
		Disclosures: disclosures, SearchKey: searchKey, BreakGlassTTL: c.breakGlassTTL, AuditTopic: u.auditTopicCheck(),
		DuplicatePolicy: c.duplicatePolicy, DuplicateThreshold: c.duplicateThreshold})
	svc = metrics.Instrumenting()(svc)
	verifier := s.verifier(ctx)
	set := patient.NewEndpoints(svc, u.endpoints(verifier, patient.Ops, patient.DeniedAuditor(writer)))
	// A failed command's body is PHI a dead-letter topic would keep past any erasure.
	u.commands(patient.TopicCommands, kafkatransport.PatientCommands(set), verifier, kafkatransport.SubscriberDeadLetterNoBody())
	u.retain(ctx, idempotency.RepliesTable, patient.IdempotencyTable)
	u.m.endpoints = set
	return u.serve(ctx, listenAddrs{c.httpAddr, c.grpcAddr, c.adminAddr},
		httptransport.NewPatientHandler(set, httptransport.Options{Logger: u.logger, TrustedProxies: s.trustedProxies}),
		func(g *grpc.Server) { grpctransport.RegisterPatientServer(g, set) })
}

// runPatient is `pms patient`.
func runPatient(ctx context.Context, args []string, _, stderr io.Writer) error {
	return runService[patientConfig](ctx, "patient", args, stderr, buildPatient)
}
