package restore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/ops/cluster"
)

// TestPointInTimeRestore is the restore drill of docs/operations.md ("PostgreSQL:
// pgBackRest"), run end to end: a cluster of its own archiving to an encrypted pgBackRest
// repository; the platform (every service a process, ops/cluster) on it; patients registered
// by concurrent clients through the gateway while a full backup is taken; then clients
// updating their patients while a restore point is named; then a disaster (most patients
// deleted straight in SQL) and more changes through the API. The cluster is restored to the
// named point into a new data directory and the platform started on it. Checks: every
// patient registered before the point is there; each patient's version is at least the last
// update acknowledged before the point and below the first update started after it; every
// audit chain verifies (`pms audit verify`); every patient has its billing account;
// analytics' summary (folded from the topics, which the restore does not rewind) agrees with
// the patient database. It prints RTO, RPO and the backup's size.
func TestPointInTimeRestore(t *testing.T) {
	bin, _, why := Tools()
	if why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the restore drill must run under CI: %s", why)
		}
		t.Skip(why)
	}
	pg := NewPG(t, bin)
	tail := cluster.NewTail(200)
	c := cluster.Start(t, cluster.Options{DatabaseURL: pg.URL(), NoRateLimits: true, DatabaseConns: 4, Logs: tail})
	defer func() {
		if t.Failed() {
			t.Logf("platform logs:\n%s", tail.String())
			if b, err := os.ReadFile(pg.Dir + "/log/postgres.log"); err == nil {
				t.Logf("postgres log (tail):\n%s", lastLines(string(b), 30))
			}
		}
	}()
	ctx := context.Background()
	token, err := c.Login(ctx, cluster.AdminEmail, cluster.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}

	// 1. Registrations by concurrent clients while the full backup runs.
	const writers, perWriter = 8, 10
	ids := make([][]string, writers)
	backupDone := make(chan string, 1)
	go func() {
		start := time.Now()
		out, err := pg.cmd("pgbackrest", "--config="+pg.Conf, "--stanza="+Stanza, "--type=full", "backup").CombinedOutput()
		if err != nil {
			backupDone <- fmt.Sprintf("full backup: %v %s", err, out)
			return
		}
		t.Logf("full backup under load: %s", time.Since(start).Round(10*time.Millisecond))
		backupDone <- ""
	}()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				body := map[string]string{"name": fmt.Sprintf("Drill %d-%d", w, i), "email": fmt.Sprintf("drill%d-%d@example.org", w, i),
					"address": "1 Main St", "dateOfBirth": "1980-01-02"}
				code, b, err := c.Do(ctx, token, "POST", "/api/patients", body)
				if err != nil || code != http.StatusCreated {
					errs <- fmt.Errorf("create: %d %s %v", code, b, err)
					return
				}
				var p struct{ ID string }
				if err := json.Unmarshal(b, &p); err != nil {
					errs <- err
					return
				}
				ids[w] = append(ids[w], p.ID)
			}
		}()
	}
	wg.Wait()
	if msg := <-backupDone; msg != "" {
		t.Fatal(msg)
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	// 2. Each writer updates its first patient again and again; the restore point is named
	// in the middle. An update is "before" when acknowledged before the point was asked
	// for, "after" when sent after the point was made.
	type update struct {
		version          int64
		sent, acked      time.Time
		acknowledgedOkay bool
	}
	updates := make([][]update, writers)
	var acks atomic.Int64
	stop := make(chan struct{})
	put := func(w int, address string) update {
		u := update{sent: time.Now()}
		code, b, err := c.Do(ctx, token, "PUT", "/api/patients/"+ids[w][0], map[string]string{"name": fmt.Sprintf("Drill %d-0", w),
			"email": fmt.Sprintf("drill%d-0@example.org", w), "address": address, "dateOfBirth": "1980-01-02"})
		u.acked = time.Now()
		if err == nil && code == http.StatusOK {
			var p struct{ Version int64 }
			if json.Unmarshal(b, &p) == nil && p.Version > 0 {
				u.version, u.acknowledgedOkay = p.Version, true
				acks.Add(1)
			}
		}
		return u
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				updates[w] = append(updates[w], put(w, fmt.Sprintf("%d Update St", n)))
			}
		}()
	}
	// waitAcks polls until n more updates than at the call were acknowledged.
	waitAcks := func(n int64, what string) {
		t.Helper()
		target := acks.Load() + n
		deadline := time.Now().Add(30 * time.Second)
		for acks.Load() < target {
			if time.Now().After(deadline) {
				t.Fatalf("%s: only %d of %d updates acknowledged within 30s", what, acks.Load(), target)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitAcks(2*writers, "before the point")
	pointAsked := time.Now()
	pg.PSQL(t, "pms", "SELECT pg_create_restore_point('before-the-disaster')")
	pointMade := time.Now()
	// Work goes on after the point: updates sent after it, acknowledged, and a registration
	// that billing and analytics apply before the disaster. The restore takes it away; its
	// PATIENT_CREATED stays on the topic (the broker is not restored), and the consumers,
	// resuming from their recovered offsets, must not apply it again (the recovery fence).
	code, b, err := c.Do(ctx, token, "POST", "/api/patients", map[string]string{"name": "Lost After Point", "email": "lost-after-point@example.org",
		"address": "3 Main St", "dateOfBirth": "1979-03-04"})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("register after the point: %d %s %v", code, b, err)
	}
	var lost struct{ ID string }
	if err := json.Unmarshal(b, &lost); err != nil {
		t.Fatal(err)
	}
	pollPG(t, pg, "billing's account of the patient registered after the point", "SELECT count(*) FROM billing.accounts WHERE patient_id = '"+lost.ID+"'", "1")
	pollPG(t, pg, "analytics folding the registration after the point", "SELECT COALESCE(SUM(value), 0) FROM analytics.counters WHERE name = 'patients_registered'", strconv.Itoa(writers*perWriter+1))
	waitAcks(3*writers, "after the point")
	close(stop)
	wg.Wait()

	// 3. The disaster: most patients deleted straight in SQL (not through the platform: no
	// event, no audit entry), then more changes through the API.
	var keep []string
	for w := range writers {
		keep = append(keep, "'"+ids[w][0]+"'")
	}
	pg.PSQL(t, "pms", `BEGIN;
DELETE FROM patient.patient_versions WHERE patient_id NOT IN (`+strings.Join(keep, ",")+`);
DELETE FROM patient.patient_match_keys WHERE patient_id NOT IN (`+strings.Join(keep, ",")+`);
DELETE FROM patient.patient_identifiers WHERE patient_id NOT IN (`+strings.Join(keep, ",")+`);
DELETE FROM patient.patients WHERE id NOT IN (`+strings.Join(keep, ",")+`);
COMMIT;`)
	if n := pg.PSQL(t, "pms", "SELECT count(*) FROM patient.patients"); n != strconv.Itoa(writers) {
		t.Fatalf("after the disaster %s patients, want %d", n, writers)
	}
	after := make([]update, writers)
	for w := range writers {
		after[w] = put(w, "after the disaster")
		if !after[w].acknowledgedOkay {
			t.Fatalf("update after the disaster refused")
		}
	}
	dataSize := pg.PSQL(t, "pms", "SELECT pg_size_pretty(pg_database_size('pms'))")

	// 4. The restore: the platform stopped (the broker, Kafka, is not part of the database
	// and keeps its topics), PostgreSQL stopped, restored to the point into a new data
	// directory, started, the platform started on it.
	for i := len(cluster.Order) - 1; i >= 1; i-- {
		if code, err := c.Proc(cluster.Order[i]).Term(30 * time.Second); err != nil || code != 0 {
			t.Fatalf("%s: exit %d %v", cluster.Order[i], code, err)
		}
	}
	pg.PSQL(t, "pms", "SELECT pg_switch_wal()")
	pg.Stop(t)
	restoreStart := time.Now()
	pg.RestoreTo(t, "before-the-disaster")
	waitPromoted(t, pg)
	for _, name := range cluster.Order[1:] {
		if err := c.Proc(name).Restart(c.Bin, 60*time.Second); err != nil {
			t.Fatalf("%s on the restored database: %v", name, err)
		}
	}
	rto := time.Since(restoreStart)
	if token, err = c.Login(ctx, cluster.AdminEmail, cluster.AdminPassword); err != nil {
		t.Fatal(err)
	}

	// The restored platform takes writes again.
	if code, b, err := c.Do(ctx, token, "POST", "/api/patients", map[string]string{"name": "After Restore", "email": "after-restore@example.org",
		"address": "2 Main St", "dateOfBirth": "1981-02-03"}); err != nil || code != http.StatusCreated {
		t.Fatalf("register on the restored platform: %d %s %v", code, b, err)
	}

	// Checks. Every registration was acknowledged before the point (and one made since).
	want := writers*perWriter + 1
	if n := pg.PSQL(t, "pms", "SELECT count(*) FROM patient.patients WHERE deleted_at IS NULL"); n != strconv.Itoa(want) {
		t.Errorf("restored: %s live patients, want %d (every registration was acknowledged before the point, one made after the restore)", n, want)
	}
	before, afterCount := 0, 0
	for w := range writers {
		var lastBefore, firstAfter int64 = 1, 1 << 62
		for _, u := range updates[w] {
			if u.acknowledgedOkay && u.acked.Before(pointAsked) {
				lastBefore = max(lastBefore, u.version)
				before++
			}
			if u.acknowledgedOkay && u.sent.After(pointMade) {
				firstAfter = min(firstAfter, u.version)
				afterCount++
			}
		}
		if after[w].version < firstAfter {
			firstAfter = after[w].version
		}
		v, err := strconv.ParseInt(pg.PSQL(t, "pms", "SELECT version FROM patient.patients WHERE id = '"+ids[w][0]+"'"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if v < lastBefore || v >= firstAfter {
			t.Errorf("patient %d: version %d after the restore; want at least %d (acknowledged before the point) and below %d (sent after it)", w, v, lastBefore, firstAfter)
		}
	}
	if before == 0 || afterCount == 0 {
		t.Errorf("the load did not straddle the point: %d updates acknowledged before it, %d sent after it", before, afterCount)
	}
	// Every patient has its billing account, and every account its patient: the registration
	// after the point is gone from both (billing, resuming from its recovered offsets, read
	// its PATIENT_CREATED again and skipped it: the recovery fence).
	if n := pg.PSQL(t, "pms", `SELECT count(*) FROM patient.patients p WHERE p.deleted_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM billing.accounts a WHERE a.patient_id = p.id)`); n != "0" {
		t.Errorf("%s patients without a billing account after the restore", n)
	}
	if n := pg.PSQL(t, "pms", "SELECT count(*) FROM patient.patients WHERE id = '"+lost.ID+"'"); n != "0" {
		t.Errorf("the patient registered after the point is in the restored database (%s rows)", n)
	}
	pollPG(t, pg, "billing's consumer past the fenced events", `SELECT count(*) FROM billing.accounts a
		WHERE NOT EXISTS (SELECT 1 FROM patient.patients p WHERE p.id = a.patient_id)`, "0")
	// Every audit chain verifies.
	var out, stderr bytes.Buffer
	cmd := exec.Command(c.Bin, "audit", "verify", "--database-url="+pg.URL(), "--log-level=error", "--timeout=1m")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Errorf("pms audit verify on the restored database: %v\n%s%s", err, out.String(), stderr.String())
	}
	chains := 0
	for dec := json.NewDecoder(&out); dec.More(); {
		var r struct {
			Service string
			OK      bool
			Rows    int64
		}
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		if !r.OK {
			t.Errorf("audit chain of %s does not verify: %+v", r.Service, r)
		}
		chains++
	}
	if chains != 5 {
		t.Errorf("%d audit chains verified, want 5", chains)
	}
	// Analytics agrees with the patient database: every registered patient counted once (a
	// registration published again by the restored outbox is not counted twice, the one the
	// restore took away not at all), none deleted (the disaster went round the platform and
	// the restore undid it), and its lag reaches 0: it resumed from the offsets its recovered
	// database holds and moved past the fenced events.
	var summary struct {
		Patients struct{ Registered, Deleted, Live int }
		Lag      int64
	}
	limit := time.Now().Add(30 * time.Second)
	for {
		code, b, err := c.Do(ctx, token, "GET", "/api/analytics/summary", nil)
		if err == nil && code == http.StatusOK && json.Unmarshal(b, &summary) == nil &&
			summary.Patients.Registered == want && summary.Patients.Live == want && summary.Patients.Deleted == 0 && summary.Lag == 0 {
			break
		}
		if time.Now().After(limit) {
			t.Fatalf("analytics after the restore: %d %s %v; want %d registered and live, 0 deleted, lag 0", code, b, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The repository: what the backup weighs, and that it is sealed: no patient's e-mail in
	// any of its files, and a wrong passphrase reads nothing.
	var info []struct {
		Backup []struct {
			Type string
			Info struct {
				Size       int64
				Repository struct{ Delta int64 }
			}
		}
	}
	if err := json.Unmarshal([]byte(pg.Backrest(t, "info", "--output=json")), &info); err != nil || len(info) != 1 || len(info[0].Backup) == 0 {
		t.Fatalf("pgbackrest info: %v %+v", err, info)
	}
	full := info[0].Backup[0]
	if out, err := pg.cmd("pgbackrest", "--config="+pg.Conf, "--stanza="+Stanza, "--repo1-cipher-pass=not-the-passphrase", "info").CombinedOutput(); err == nil &&
		!strings.Contains(string(out), "error") {
		t.Errorf("pgbackrest info with a wrong passphrase: %s; want a failure", out)
	}
	if err := filepath.WalkDir(pg.Dir+"/repo", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() { // "latest" is a symbolic link
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("@example.org")) || bytes.Contains(b, []byte("Drill 0-")) {
			t.Errorf("%s holds patient data in clear", p)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	repo := strings.Fields(pg.run(t, "du", "-sh", pg.Dir+"/repo"))[0]
	t.Logf("FIGURES restore drill: data %s; %s backup %d kB of data, %d kB in the repository (compressed, encrypted); repository with WAL %s; RTO %s (restore + recovery + platform up); RPO archive_timeout = %s; %d updates acknowledged before the point, %d sent after it; analytics lag after the restore %d",
		dataSize, full.Type, full.Info.Size/1024, full.Info.Repository.Delta/1024, repo, rto.Round(10*time.Millisecond), pg.ArchiveTimeout, before, afterCount, summary.Lag)
}

// pollPG polls until query, run in the pms database, answers want.
func pollPG(t *testing.T, pg *PG, what, query, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := pg.PSQL(t, "pms", query)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s after 30s, want %s", what, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPromoted polls until the restored cluster has left recovery.
func waitPromoted(t *testing.T, pg *PG) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for pg.PSQL(t, "postgres", "SELECT pg_is_in_recovery()") != "f" {
		if time.Now().After(deadline) {
			t.Fatal("the restored cluster did not promote within 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
