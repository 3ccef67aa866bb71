// Package faults_test is the fault suite (make faults; a shorter run is part of make test):
// the platform as separate `pms` processes on PostgreSQL and the embedded broker in its own
// process, a writer keeping a ledger of every 2xx it was given, and one fault per test —
// the broker stopped, billing stopped, the patient service killed with SIGKILL, PostgreSQL
// connections terminated, SIGTERM under load. Each test checks that nothing acknowledged was
// lost, nothing was applied twice, and no answer was a 5xx the contract does not allow, and
// logs a FIGURES line for the issue note.
package faults_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/ops/cluster"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// suite is one cluster with its admin token and log tail.
type suite struct {
	c     *cluster.Cluster
	token string
	dbURL string
}

func setup(t *testing.T) *suite {
	t.Helper()
	return setupWith(t, cluster.Options{})
}

// setupWith is setup with o (its database, logs and rate limits are the suite's).
func setupWith(t *testing.T, o cluster.Options) *suite {
	t.Helper()
	tail := cluster.NewTail(200)
	dbURL := dbtest.PostgresDatabase(t)
	// Registered before Start, so a process that fails to start shows why.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last process logs:\n%s", tail.String())
		}
	})
	o.DatabaseURL, o.Logs, o.NoRateLimits = dbURL, tail, true
	c := cluster.Start(t, o)
	token, err := c.Login(context.Background(), cluster.AdminEmail, cluster.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	return &suite{c: c, token: token, dbURL: dbURL}
}

func (l *ledger) acks() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.creates + l.updates
}

// createCount is the number of acknowledged creates, read under the ledger's lock (the
// writers update it concurrently).
func (l *ledger) createCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.creates
}

// figures logs the line the issue note's table is built from.
func figures(t *testing.T, fault string, lost, twice, fiveXX int, recovery time.Duration, l *ledger) {
	t.Logf("FIGURES fault=%q lost=%d applied_twice=%d 5xx=%d recovery=%s | %s", fault, lost, twice, fiveXX, recovery.Round(10*time.Millisecond), l)
}

// not2xxOr returns a matcher for answers other than 2xx and the allowed codes.
func not2xxOr(allowed ...int) func(int) bool {
	return func(code int) bool {
		if code >= 200 && code < 300 {
			return false
		}
		for _, a := range allowed {
			if code == a {
				return false
			}
		}
		return true
	}
}

func fiveXX(code int) bool { return code >= 500 }

// checkDelivered is the "nothing lost, nothing twice" check against what the database
// committed (a superset of the ledger: a change whose answer was lost in the fault may
// have committed): every committed version of every patient has its event on the patient
// topic under one event id, and analytics counts each exactly once. It returns the changes
// without an event (plus any analytics shortfall), the changes applied twice, and how long
// the figures took to settle.
func (s *suite) checkDelivered(t *testing.T, l *ledger) (lost, twice int, took time.Duration) {
	t.Helper()
	start := time.Now()
	db := committed(t, s.c, s.token)
	if len(db) < l.creates {
		t.Errorf("the database holds %d patients, the ledger %d acknowledged creates", len(db), l.creates)
	}
	truth := newLedger()
	var updates int64
	for id, v := range db {
		for version := int64(1); version <= v; version++ {
			truth.ok(change{id, version}, version == 1)
		}
		updates += v - 1
	}
	ev, _ := waitEvents(t, s.c, truth, 90*time.Second)
	lost, twice, missing := eventFigures(truth, ev)
	if lost > 0 || twice > 0 {
		t.Errorf("events: %d committed changes without an event (e.g. %v), %d changes published twice", lost, missing, twice)
	}
	a, _, ok := waitAnalytics(t, s.c, s.token, 90*time.Second, func(a summary) bool {
		return a.Patients.Registered >= int64(len(db)) && a.Patients.Updated >= updates
	})
	if !ok {
		lost += int(int64(len(db))-a.Patients.Registered) + int(updates-a.Patients.Updated)
		t.Errorf("analytics: registered %d updated %d, the database %d patients %d updates", a.Patients.Registered, a.Patients.Updated, len(db), updates)
	}
	if extra := int(a.Patients.Registered-int64(len(db))) + int(a.Patients.Updated-updates); extra > 0 {
		twice += extra
		t.Errorf("analytics applied more than was committed: registered %d updated %d, the database %d patients %d updates", a.Patients.Registered, a.Patients.Updated, len(db), updates)
	}
	t.Logf("committed: %d patients, %d updates (acknowledged: %d creates, %d updates)", len(db), updates, l.creates, l.updates)
	s.verifyAudit(t, l)
	return lost, twice, time.Since(start)
}

// verifyAudit checks the patient and billing audit chains end to end (a row half-written
// or lost in the fault would break the chain at its seq), and that every acknowledged create
// and update has its audit entry: an answer is given only after the entry is stored.
func (s *suite) verifyAudit(t *testing.T, l *ledger) {
	t.Helper()
	ctx := context.Background()
	for _, service := range []string{"patient", "billing"} {
		d, err := db.Open(ctx, s.dbURL, service)
		if err != nil {
			t.Fatal(err)
		}
		// Entries a change recorded in its own transaction while the writer could not chain
		// them are chained by the writer's own round, within seconds of the database's return.
		polltest.Until(t, 30*time.Second, service+"'s pending audit entries chained", func() bool {
			var n int
			return d.GetContext(ctx, &n, `SELECT count(*) FROM `+audit.PendingTable) == nil && n == 0
		})
		rep, err := audit.Verify(ctx, d, "")
		if service == "patient" {
			s.auditedChanges(t, d, l)
		}
		_ = d.Close()
		if err != nil || !rep.OK || rep.Rows == 0 {
			t.Errorf("%s audit chain: %+v %v", service, rep, err)
		} else {
			t.Logf("%s audit chain: %d rows verified", service, rep.Rows)
		}
	}
}

// auditedChanges compares the ledger with the patient audit log's successful creates and
// updates per patient.
func (s *suite) auditedChanges(t *testing.T, d *db.DB, l *ledger) {
	t.Helper()
	var rows []struct {
		Subject string `db:"subject_id"`
		Action  string `db:"action"`
		N       int    `db:"n"`
	}
	if err := d.Select(&rows, `SELECT subject_id, action, count(*) AS n FROM audit_log WHERE outcome = 'success' AND action IN ('create', 'update') GROUP BY subject_id, action`); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range rows {
		got[r.Subject+"/"+r.Action] = r.N
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	want := map[string]int{}
	for _, c := range l.acked {
		if c.version == 1 {
			want[c.id+"/create"]++
		} else {
			want[c.id+"/update"]++
		}
	}
	missing := 0
	for k, n := range want {
		if got[k] < n {
			missing++
		}
	}
	// Issue 17: a change records its entry in its own transaction, so none may be missing,
	// however long the outage (the figure make faults reports; 1 of ~1,100 before).
	t.Logf("audit: %d of %d acknowledged changes without an audit-log entry", missing, len(l.acked))
	if missing > 0 {
		t.Errorf("%d acknowledged changes have no audit entry", missing)
	}
}

// committed pages through the patient list and returns every patient's current version.
func committed(t *testing.T, c *cluster.Cluster, token string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	next := "/api/patients?limit=100"
	for next != "" {
		req, _ := http.NewRequest(http.MethodGet, c.Gateway()+next, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := cluster.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page []struct {
			ID      string `json:"id"`
			Version int64  `json:"version"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("patient list: %d %v", resp.StatusCode, err)
		}
		for _, p := range page {
			out[p.ID] = p.Version
		}
		next = ""
		if m := nextLink.FindStringSubmatch(resp.Header.Get("Link")); m != nil {
			next = m[1]
		}
	}
	return out
}

var nextLink = regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)

// TestBrokerStopped: the broker stops under steady writes and comes back on the same port;
// writes keep succeeding meanwhile (the outbox holds the events), and afterwards every
// committed change has its event and analytics counts each exactly once.
func TestBrokerStopped(t *testing.T) {
	down := cluster.EnvDuration(t, "FAULTS_BROKER_DOWN", 10*time.Second)
	s := setup(t)
	l := newLedger()
	w := startWriter(s.c, s.token, 4, l)
	polltest.Until(t, 30*time.Second, "writes before the fault", func() bool { return l.acks() >= 50 })
	broker := s.c.Proc("broker")
	if code, err := broker.Term(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("broker stop: %d %v", code, err)
	}
	before := l.acks()
	<-time.After(down) // the outage itself
	during := l.acks() - before
	if err := broker.Restart(s.c.Bin, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	polltest.Until(t, 30*time.Second, "writes after the broker returned", func() bool { return l.acks() >= before+during+50 })
	w.stop()
	if during == 0 {
		t.Errorf("no write succeeded while the broker was down")
	}
	lost, twice, _ := s.checkDelivered(t, l)
	bad := l.count(fiveXX)
	if n := l.count(not2xxOr()); n > 0 {
		t.Errorf("answers other than 2xx while the broker was down: %s", l)
	}
	figures(t, fmt.Sprintf("broker stopped %s", down), lost, twice, bad, time.Since(back), l)
	t.Logf("acknowledged while the broker was down: %d", during)
}

// TestBillingStopped: billing stops; patient creates still succeed; when billing returns,
// every patient gets a billing account (from the patient topic) within seconds.
func TestBillingStopped(t *testing.T) {
	down := cluster.EnvDuration(t, "FAULTS_BILLING_DOWN", 5*time.Second)
	s := setup(t)
	l := newLedger()
	w := startWriter(s.c, s.token, 4, l)
	polltest.Until(t, 30*time.Second, "writes before the fault", func() bool { return l.acks() >= 20 })
	billing := s.c.Proc("billing")
	if code, err := billing.Term(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("billing stop: %d %v", code, err)
	}
	creates := l.createCount()
	<-time.After(down) // the outage itself
	w.stop()
	if l.createCount() == creates {
		t.Fatalf("no patient created while billing was down: %s", l)
	}
	if n := l.count(not2xxOr()); n > 0 {
		t.Errorf("answers other than 2xx while billing was down: %s", l)
	}
	if err := billing.Restart(s.c.Bin, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	pending := map[string]bool{}
	for id := range l.versions {
		pending[id] = true
	}
	total := len(pending)
	polltest.Until(t, 60*time.Second, "a billing account for every patient", func() bool {
		for id := range pending {
			code, b, err := s.c.Do(context.Background(), s.token, http.MethodGet, "/api/billing/accounts?patientId="+url.QueryEscape(id), nil)
			if err == nil && code == http.StatusOK && strings.Contains(string(b), id) {
				delete(pending, id)
			}
		}
		return len(pending) == 0
	})
	recovery := time.Since(back)
	lost, twice, _ := s.checkDelivered(t, l)
	figures(t, fmt.Sprintf("billing stopped %s (%d patients, %d created while down)", down, total, l.createCount()-creates), lost, twice, l.count(fiveXX), recovery, l)
}

// TestPatientKilled: kill -9 of the patient service under load, then a restart on the same
// ports: every acknowledged create and update is stored and has its event, and the only
// failures clients saw were 503s from the gateway while it was gone.
func TestPatientKilled(t *testing.T) {
	s := setup(t)
	l := newLedger()
	w := startWriter(s.c, s.token, 8, l)
	polltest.Until(t, 30*time.Second, "writes before the fault", func() bool { return l.acks() >= 300 })
	p := s.c.Proc("patient")
	p.Kill()
	polltest.Until(t, 30*time.Second, "clients noticing the outage", func() bool { return l.count(not2xxOr(http.StatusPreconditionFailed)) > 0 })
	restart := time.Now()
	if err := p.Restart(s.c.Bin, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	polltest.Until(t, 30*time.Second, "a 2xx after the restart", func() bool { return l.lastSuccess().After(restart) })
	recovery := time.Since(restart)
	before := l.acks()
	polltest.Until(t, 30*time.Second, "writes after the restart", func() bool { return l.acks() >= before+300 })
	w.stop()
	if missing := stored(t, s.c, s.token, l); len(missing) > 0 {
		t.Errorf("%d acknowledged changes not stored, e.g. %v", len(missing), missing[:min(3, len(missing))])
	}
	if n := l.count(not2xxOr(http.StatusServiceUnavailable, http.StatusPreconditionFailed)); n > 0 {
		t.Errorf("answers other than 2xx, 503 and 412: %s", l)
	}
	lost, twice, _ := s.checkDelivered(t, l)
	figures(t, "kill -9 patient", lost, twice, l.count(fiveXX), recovery, l)
}

// TestReplicasKilled (issue 20 item 8): two patient and two billing processes behind the
// gateway, which dials both of each (grpctransport.Dial: round-robin over the healthy ones);
// under write load one of each is killed (kill -9) and not restarted. Writes go on through
// the survivors; every acknowledged create and update is stored, every committed change has
// its event once and analytics counts it once, every patient ends up with exactly one billing
// account (billing's consumer group rebalances the dead replica's partitions to the
// survivor), and the audit chains, written by both replicas, verify. Clients see at most the
// calls the dead replica had in flight fail (503): the connection leaves it out and the
// upstream's breaker, which waits for as many failures as every replica's share, stays
// closed; the count and how long failures went on after the kill are figures, not assertions.
func TestReplicasKilled(t *testing.T) {
	// Nine processes: 4 connections each (not the cluster's 8) keep this test and a package
	// running beside it (make test runs two at once) under the server's max_connections.
	s := setupWith(t, cluster.Options{Replicas: map[string]int{"patient": 2, "billing": 2}, DatabaseConns: 4})
	l := newLedger()
	w := startWriter(s.c, s.token, 8, l)
	polltest.Until(t, 30*time.Second, "writes before the fault", func() bool { return l.acks() >= 300 })
	failedBefore := l.count(not2xxOr())
	killed := time.Now()
	s.c.Proc("patient-2").Kill()
	s.c.Proc("billing-2").Kill()
	before := l.acks()
	polltest.Until(t, 60*time.Second, "writes through the surviving replicas", func() bool { return l.acks() >= before+300 })
	w.stop()
	// Recovery: from the kill to the last failed answer (0 when no client saw one).
	recovery := time.Duration(0)
	if l.count(not2xxOr()) > failedBefore {
		recovery = l.lastFailure().Sub(killed)
	}
	if missing := stored(t, s.c, s.token, l); len(missing) > 0 {
		t.Errorf("%d acknowledged changes not stored, e.g. %v", len(missing), missing[:min(3, len(missing))])
	}
	if n := l.count(not2xxOr(http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusPreconditionFailed)); n > 0 {
		t.Errorf("answers other than 2xx, 503, 504 and 412: %s", l)
	}
	// The 8 writers had at most 8 calls in flight on the dead replica; a few more may have been
	// sent to it before the connection saw it go. An upstream breaker that opened would answer
	// every call 503 for its 10 s: hundreds.
	if n := l.count(fiveXX); n > 32 {
		t.Errorf("%d answers 5xx after one of two replicas died: the whole upstream was refused (%s)", n, l)
	}
	lost, twice, _ := s.checkDelivered(t, l)
	// One account per patient: none missing (the survivor took the dead one's partitions), none
	// twice (each event applied once, whichever replica read it).
	d, err := db.Open(context.Background(), s.dbURL, "billing")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var withoutAccount, extraAccounts int
	polltest.Until(t, 90*time.Second, "every patient's billing account", func() bool {
		if err := d.GetContext(context.Background(), &withoutAccount, `SELECT count(*) FROM patient.patients p
			WHERE NOT EXISTS (SELECT 1 FROM billing.accounts a WHERE a.patient_id = p.id)`); err != nil {
			t.Fatal(err)
		}
		return withoutAccount == 0
	})
	if err := d.GetContext(context.Background(), &extraAccounts, `SELECT COALESCE(SUM(n - 1), 0) FROM
		(SELECT count(*) AS n FROM billing.accounts GROUP BY patient_id) AS c`); err != nil || extraAccounts != 0 {
		t.Errorf("patients with more than one billing account: %d extra accounts (%v)", extraAccounts, err)
	}
	figures(t, "kill -9 of one of two patient and one of two billing replicas", lost, twice+extraAccounts, l.count(fiveXX), recovery, l)
}

// TestPostgresConnectionsKilled terminates every PostgreSQL connection of the suite's own
// database three times under load, then shuts the database to new connections for a while
// (ALLOW_CONNECTIONS false, as during a failover): clients see 503s (never 500s, never a
// hang), consumers wait the outage out instead of dead-lettering, the services recover
// without a restart, and no row is half-written.
func TestPostgresConnectionsKilled(t *testing.T) {
	// 15 s by default (make test, CI): three times the audit writer's 5 s retry window, so the
	// suite shows what holds through an outage longer than the window (no acknowledged change
	// lost, no 500, only the answers allowed below); make faults runs 30 s.
	down := cluster.EnvDuration(t, "FAULTS_PG_DOWN", 15*time.Second)
	s := setup(t)
	u, err := url.Parse(s.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	admin := *u
	admin.Path = "/postgres"
	pg, err := sqlx.Open("pgx", admin.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() }) // after the cleanup below re-allows connections
	allow := func(on bool) {
		t.Helper()
		if _, err := pg.Exec(fmt.Sprintf(`ALTER DATABASE %q WITH ALLOW_CONNECTIONS %t`, dbName, on)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { allow(true) })
	terminate := func() int {
		t.Helper()
		var n int
		if err := pg.Get(&n, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, dbName); err != nil {
			t.Fatal(err)
		}
		return n
	}
	pids := map[string]int{}
	for _, name := range cluster.Order {
		pids[name] = s.c.Proc(name).Pid()
	}
	l := newLedger()
	w := startWriter(s.c, s.token, 8, l)
	polltest.Until(t, 30*time.Second, "writes before the fault", func() bool { return l.acks() >= 300 })
	killed := 0
	for range 3 {
		killed += terminate()
		before := l.acks()
		polltest.Until(t, 30*time.Second, "writes between kills", func() bool { return l.acks() >= before+200 })
	}
	allow(false)
	killed += terminate()
	<-time.After(down) // the outage itself
	allow(true)
	last := time.Now()
	recovery := polltest.Until(t, 60*time.Second, "a 2xx after the database returned", func() bool { return l.lastSuccess().After(last) })
	before := l.acks()
	polltest.Until(t, 30*time.Second, "writes after the outage", func() bool { return l.acks() >= before+200 })
	w.stop()
	for _, name := range cluster.Order {
		if p := s.c.Proc(name); !p.Running() || p.Pid() != pids[name] {
			t.Errorf("%s was restarted or died", name)
		}
	}
	if l.count(func(c int) bool { return c == 0 }) > 0 {
		t.Errorf("requests without an answer (hang, reset): %s", l)
	}
	// 504 is the contract's timeout: the gateway's 10 s deadline ending its retries of a read
	// while the database refused connections.
	if n := l.count(not2xxOr(http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusPreconditionFailed)); n > 0 {
		t.Errorf("answers other than 2xx, 503, 504 and 412: %s", l)
	}
	if missing := stored(t, s.c, s.token, l); len(missing) > 0 {
		t.Errorf("%d acknowledged changes not stored, e.g. %v", len(missing), missing[:min(3, len(missing))])
	}
	s.checkWhole(t, l)
	lost, twice, _ := s.checkDelivered(t, l)
	figures(t, fmt.Sprintf("pg_terminate_backend ×4 (%d connections), then no connections for %s", killed, down), lost, twice, l.count(fiveXX), recovery, l)
}

// checkWhole is the half-written-rows check: every patient's history has exactly one entry
// per version, 1..current.
func (s *suite) checkWhole(t *testing.T, l *ledger) {
	t.Helper()
	l.mu.Lock()
	ids := make([]string, 0, len(l.versions))
	for id := range l.versions {
		ids = append(ids, id)
	}
	l.mu.Unlock()
	for _, id := range ids {
		code, b, err := s.c.Do(context.Background(), s.token, http.MethodGet, "/api/patients/"+id+"/history", nil)
		var versions []struct {
			Version int64 `json:"version"`
		}
		if err != nil || code != http.StatusOK || json.Unmarshal(b, &versions) != nil {
			t.Errorf("history of %s: %d %v", id, code, err)
			continue
		}
		seen := map[int64]bool{}
		for _, v := range versions {
			seen[v.Version] = true
		}
		for v := int64(1); v <= int64(len(versions)); v++ {
			if !seen[v] {
				t.Errorf("history of %s: %d entries but no version %d", id, len(versions), v)
				break
			}
		}
	}
}

// TestSIGTERMUnderLoad sends SIGTERM to a process with requests in flight: every request
// that reached it is answered 2xx, later ones are refused at connect (never reset), and it
// exits 0. The patient service is driven directly; the gateway through itself.
func TestSIGTERMUnderLoad(t *testing.T) {
	for _, target := range []string{"patient", "gateway"} {
		t.Run(target, func(t *testing.T) {
			s := setup(t)
			base := s.c.URL(target + "/http")
			prefix := ""
			if target == "gateway" {
				prefix = "/api"
			}
			l := newLedger()
			direct := func(ctx context.Context, method, path string, body any, headers ...string) (int, []byte, error) {
				return cluster.DoWith(cluster.FreshConns, ctx, s.token, method, base+strings.Replace(path, "/api", prefix, 1), body, headers...)
			}
			w := startWriterOn(func(ctx context.Context, method, path string, body any, headers ...string) (int, []byte, error) {
				code, b, err := direct(ctx, method, path, body, headers...)
				if err != nil && isRefused(err) {
					return refused, nil, nil
				}
				if err != nil && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)) {
					// A connection still in the kernel's accept queue when the listener
					// closes is reset, and one accepted but not yet read is closed by
					// Shutdown (EOF): requests racing the close, not requests in flight
					// (without a load balancer draining first, as in production). Counted
					// apart; the ledger checks below still require every acknowledged change.
					return resetUnaccepted, nil, nil
				}
				return code, b, err
			}, 16, l)
			polltest.Until(t, 30*time.Second, "writes before the signal", func() bool { return l.acks() >= 300 })
			signalled := time.Now()
			code, err := s.c.Proc(target).Term(30 * time.Second)
			took := time.Since(signalled)
			if err != nil || code != 0 {
				t.Errorf("exit after SIGTERM: %d %v", code, err)
			}
			polltest.Until(t, 30*time.Second, "clients refused at connect", func() bool { return l.count(func(c int) bool { return c == refused }) > 0 })
			if err := s.c.Proc(target).Restart(s.c.Bin, 60*time.Second); err != nil {
				t.Fatal(err)
			}
			w.stop()
			if n := l.count(not2xxOr(refused, resetUnaccepted)); n > 0 {
				t.Errorf("answers other than 2xx and refused-at-connect: %s", l)
			}
			if missing := stored(t, s.c, s.token, l); len(missing) > 0 {
				t.Errorf("%d acknowledged changes not stored, e.g. %v", len(missing), missing[:min(3, len(missing))])
			}
			lost, twice, _ := s.checkDelivered(t, l)
			figures(t, "SIGTERM "+target+" under load (16 callers)", lost, twice, l.count(fiveXX), took, l)
		})
	}
}

// refused is the ledger's code for a connection refused at connect: the process was not
// listening, so nothing was in flight.
const refused = -2

// resetUnaccepted is the ledger's code for a connection reset before the server accepted it.
const resetUnaccepted = -3

func isRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED)
}
