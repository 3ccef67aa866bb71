package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	neturl "net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	grpctransport "github.com/pms/pms/transport/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// forgeChain recomputes the hash of every row of the patient audit log from seq from on, after
// changing that row's actor, with the insert-only triggers disabled: a forger with the
// database owner's rights who knows the chain's algorithm (pkg/platform/audit, chainHash).
func forgeChain(t *testing.T, d *db.DB, from int64) {
	t.Helper()
	if _, err := d.Exec(`ALTER TABLE audit_log DISABLE TRIGGER USER`); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := d.Exec(`ALTER TABLE audit_log ENABLE TRIGGER USER`); err != nil {
			t.Fatal(err)
		}
	}()
	var rows []struct {
		Seq                                                                   int64
		ID, Actor, Role, Action, SubjectID, Outcome, RequestID, ClientAddress string
		At                                                                    time.Time
		PrevHash, Hash                                                        string
	}
	if err := d.Select(&rows, `SELECT seq, id, actor, role, action, subject_id AS subjectid, outcome, request_id AS requestid,
		client_address AS clientaddress, at, prev_hash AS prevhash, hash FROM audit_log ORDER BY seq`); err != nil {
		t.Fatal(err)
	}
	prev := strings.Repeat("0", 64)
	for _, r := range rows {
		if r.Seq == from {
			r.Actor = "intruder"
		}
		if r.Seq >= from {
			h := sha256.New()
			h.Write([]byte(prev))
			for _, f := range []string{strconv.FormatInt(r.Seq, 10), r.ID, r.At.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano),
				r.Actor, r.Role, r.Action, r.SubjectID, r.Outcome, r.RequestID, r.ClientAddress} {
				var n [8]byte
				binary.BigEndian.PutUint64(n[:], uint64(len(f)))
				h.Write(n[:])
				h.Write([]byte(f))
			}
			r.PrevHash, r.Hash = prev, hex.EncodeToString(h.Sum(nil))
			if _, err := d.Exec(`UPDATE audit_log SET actor = $1, prev_hash = $2, hash = $3 WHERE seq = $4`, r.Actor, r.PrevHash, r.Hash, r.Seq); err != nil {
				t.Fatal(err)
			}
		}
		prev = r.Hash
	}
}

// TestAuditVerifyTamper: `pms all` on PostgreSQL with a checkpoint every 5 entries. pms audit
// verify passes (chains alone, and against the audit topic, with checkpoints signed by every
// publishing service's key, the gateway's included); an UPDATE on audit_log is refused by the trigger; a rewrite made
// with the triggers disabled that recomputes the whole chain passes the chain check but
// `pms audit verify --against-topic` fails naming the rewritten seq; GET /audit/verify
// answers the chain's verdict.
func TestAuditVerifyTamper(t *testing.T) {
	url := dbtest.PostgresDatabase(t)
	dataDir := t.TempDir()
	args := allArgs(t, url, "--data-dir="+dataDir, "--audit-checkpoint-every=5", "--audit-checkpoint-interval=200ms")
	a, stop := startPMS(t, allAddrs, args...)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	token := allToken(t, a)
	for i := range 12 {
		body := fmt.Sprintf(`{"name":"P %d","email":"p%d@example.org","address":"1 Main St","dateOfBirth":"1990-12-10"}`, i, i)
		if resp, b := call(t, "POST", "http://"+a["patient/http"]+"/patients", token, body); resp.StatusCode != http.StatusCreated {
			t.Fatalf("create: %d %s", resp.StatusCode, b)
		}
	}
	// The gateway audits the calls it refuses itself: one without a token.
	if resp, b := call(t, "GET", "http://"+a["gateway/http"]+"/api/patients", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("gateway without a token: %d %s", resp.StatusCode, b)
	}
	verify := func(extra ...string) ([]audit.Report, error) {
		var out bytes.Buffer
		cmd := append([]string{"audit", "verify", "--data-dir=" + dataDir, "--database-url=" + url,
			"--kafka-brokers=" + a["broker/kafka"], "--kafka-credentials=" + filepath.Join(dataDir, "kafka", "credentials"),
			"--log-level=error", "--timeout=1m"}, extra...)
		err := dispatch(context.Background(), cmd, &out, &bytes.Buffer{})
		var reps []audit.Report
		dec := json.NewDecoder(&out)
		for dec.More() {
			var r audit.Report
			if derr := dec.Decode(&r); derr != nil {
				t.Fatalf("verdict: %v (%s)", derr, out.String())
			}
			reps = append(reps, r)
		}
		return reps, err
	}
	// Wait until the topic holds a checkpoint of every publishing service.
	deadline := time.Now().Add(60 * time.Second)
	for {
		reps, err := verify("--against-topic")
		ok := err == nil && len(reps) == 5
		for _, r := range reps {
			if r.Service != "analytics" && (r.Checkpoints == 0 || r.Rows == 0) {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoints from every service: %+v %v", reps, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	d, err := db.Open(context.Background(), url, "patient")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Exec(`UPDATE audit_log SET actor = 'intruder' WHERE seq = 3`); err == nil || !strings.Contains(err.Error(), "insert-only") {
		t.Fatalf("UPDATE on audit_log: %v, want refused by the trigger", err)
	}
	forgeChain(t, d, 3)
	if reps, err := verify("--service=patient"); err != nil || len(reps) != 1 || !reps[0].OK {
		t.Fatalf("the recomputed chain should pass the chain check alone: %+v %v", reps, err)
	}
	reps, err := verify("--service=patient", "--against-topic")
	if err == nil || len(reps) != 1 || reps[0].OK || reps[0].FirstBadSeq != 3 || !strings.Contains(err.Error(), "seq 3") {
		t.Fatalf("--against-topic after the rewrite: %+v %v; want a failure naming seq 3", reps, err)
	}
	t.Logf("verdict: %v", err)

	// The admin endpoints answer the same verdict: against the topic, the patient service's
	// names seq 3 as the CLI does; without, the recomputed chain passes.
	endpoint := func(path string) audit.Report {
		t.Helper()
		resp, b := call(t, "GET", "http://"+a["gateway/http"]+path, token, "")
		var r audit.Report
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &r) != nil {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return r
	}
	if r := endpoint("/api/audit/verify?againstTopic=true"); r.OK || r.FirstBadSeq != 3 || !r.AgainstTopic || r.Service != "patient" ||
		r.FirstBadSeq != reps[0].FirstBadSeq || r.Problem != reps[0].Problem {
		t.Fatalf("GET /api/audit/verify?againstTopic=true = %+v; want the CLI's verdict %+v", r, reps[0])
	}
	if r := endpoint("/api/audit/verify"); !r.OK || r.AgainstTopic {
		t.Fatalf("GET /api/audit/verify = %+v; want ok (the chain alone)", r)
	}
	// Every other publishing chain verifies against the topic through its endpoint.
	for _, path := range []string{"/api/billing/audit/verify", "/api/users/audit/verify", "/api/gateway/audit/verify"} {
		if r := endpoint(path + "?againstTopic=true"); !r.OK || !r.AgainstTopic || r.Checkpoints == 0 {
			t.Errorf("GET %s?againstTopic=true = %+v; want ok against the topic with checkpoints", path, r)
		}
	}
	// Analytics publishes no chain: the flag is accepted and the chain is its own evidence.
	if r := endpoint("/api/analytics/audit/verify?againstTopic=true"); !r.OK || r.AgainstTopic {
		t.Errorf("analytics against the topic = %+v", r)
	}
	if resp, b := call(t, "GET", "http://"+a["gateway/http"]+"/api/audit/verify?againstTopic=yes", token, ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("againstTopic=yes: %d %s", resp.StatusCode, b)
	}
	// gRPC, straight to the patient service.
	conn, err := grpc.NewClient(a["patient/grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(authz.WithToken(context.Background(), token), 30*time.Second)
	defer cancel()
	v, err := grpctransport.NewPatientClient(conn).VerifyAudit(audit.WithAgainstTopic(ctx, true))
	if err != nil || v.OK || v.FirstBadSeq != 3 || !v.AgainstTopic {
		t.Fatalf("gRPC VerifyAudit against_topic = %+v, %v; want seq 3", v, err)
	}
}

// TestServiceRoleScript: ops/postgres/service-role.sql makes a role that can run the patient
// service's audit writer (SELECT and INSERT on audit_log; SELECT, INSERT and DELETE on
// audit_pending) and change patients, but cannot UPDATE, DELETE or TRUNCATE audit_log, nor
// disable its triggers.
func TestServiceRoleScript(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql is not installed")
	}
	dbURL := dbtest.PostgresDatabase(t)
	owner, err := db.Open(context.Background(), dbURL, "patient")
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if _, err := db.Migrate(context.Background(), owner, migrations.Patient()); err != nil {
		t.Fatal(err)
	}
	role := "pms_app_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Cleanup(func() {
		_, _ = owner.Exec(`DROP OWNED BY ` + role)
		_, _ = owner.Exec(`DROP ROLE ` + role)
	})
	for range 2 { // idempotent
		out, err := exec.Command(psql, "-v", "ON_ERROR_STOP=1", "-v", "schema=patient", "-v", "role="+role,
			"-f", "../../ops/postgres/service-role.sql", dbURL).CombinedOutput()
		if err != nil {
			t.Fatalf("psql: %v\n%s", err, out)
		}
	}
	u, _ := neturl.Parse(dbURL)
	u.User = neturl.User(role)
	app, err := db.Open(context.Background(), u.String(), "patient")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	w := audit.NewWriter(app, audit.Options{})
	ctx := context.Background()
	if err := audit.InTx(audit.WithPending(ctx, "update", "p-1"), app, func(*sqlx.Tx) error { return nil }); err != nil {
		t.Fatalf("the role records a pending entry: %v", err)
	}
	if err := w.Settle(ctx); err != nil {
		t.Fatalf("the role's writer chains it: %v", err)
	}
	if err := w.Append(ctx, audit.Entry{Action: "read", Outcome: audit.OutcomeSuccess}); err != nil {
		t.Fatalf("the role appends: %v", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := audit.Verify(ctx, app, ""); err != nil || !rep.OK || rep.Rows != 2 {
		t.Fatalf("chain: %+v %v", rep, err)
	}
	for _, q := range []string{
		`UPDATE audit_log SET actor = 'x'`, `DELETE FROM audit_log`, `TRUNCATE audit_log`,
		`ALTER TABLE audit_log DISABLE TRIGGER USER`,
	} {
		if _, err := app.Exec(q); err == nil {
			t.Errorf("%s: allowed to the service role", q)
		}
	}
	if _, err := app.Exec(`SELECT count(*) FROM patients`); err != nil {
		t.Errorf("the role reads its own tables: %v", err)
	}
}
