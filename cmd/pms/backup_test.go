package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"

	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/backup"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/dirlock"
	httptransport "github.com/pms/pms/transport/http"
)

// backupWorld is a `pms all` on SQLite in a data folder the test knows, with a backup key.
type backupWorld struct {
	t         *testing.T
	dataDir   string
	keyFile   string
	recipient string
}

func newBackupWorld(t *testing.T) *backupWorld {
	w := &backupWorld{t: t, dataDir: t.TempDir(), keyFile: filepath.Join(t.TempDir(), "backup.key")}
	var out bytes.Buffer
	if err := dispatch(context.Background(), []string{"backup", "keygen", "--out", w.keyFile}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	w.recipient = strings.TrimSpace(out.String())
	if !strings.HasPrefix(w.recipient, "age1") {
		t.Fatalf("keygen printed %q", w.recipient)
	}
	if fi, err := os.Stat(w.keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v %v", fi.Mode(), err)
	}
	return w
}

// start runs `pms all` on dataDir (rate limits off: the load is the test's own).
func (w *backupWorld) start(dataDir string) (map[string]string, func() error) {
	w.t.Helper()
	return startPMS(w.t, allAddrs, allArgs(w.t, "", "--data-dir="+dataDir, "--rate-limit=0", "--gateway-client-rate=0")...)
}

// pms runs a pms command in this process and returns its standard output.
func (w *backupWorld) pms(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := dispatch(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

// createPatient registers a patient through the gateway and returns its id and MRN (empty on
// any answer but 201, which the caller counts).
func createPatient(client *http.Client, gateway, token, tag string) (id, mrn string, code int, err error) {
	body := fmt.Sprintf(`{"name":"Backup Person %s","email":"backup-%s@example.org","address":"1 Restore Road","dateOfBirth":"1980-02-03"}`, tag, tag)
	req, _ := http.NewRequest("POST", "http://"+gateway+"/api/patients", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		return "", "", resp.StatusCode, nil
	}
	var p struct{ ID, MRN string }
	if err := json.Unmarshal(b, &p); err != nil {
		return "", "", resp.StatusCode, err
	}
	return p.ID, p.MRN, 201, nil
}

// registration is the registration number an MRN carries (its first nine digits).
func registration(t *testing.T, mrn string) int64 {
	n, err := strconv.ParseInt(mrn[:9], 10, 64)
	if err != nil {
		t.Fatalf("MRN %q: %v", mrn, err)
	}
	return n
}

// TestBackupRestore is issue 23's "done means" on the embedded default. 50 clients register
// patients through the gateway of `pms all` while `pms backup` runs: not one request fails.
// The file holds no patient's name or e-mail in clear and `pms backup verify` passes. It is
// restored into a fresh data folder and, after the platform stopped, in place over its own;
// each restored platform holds every patient acknowledged before the backup began (with its
// billing account: billing's consumer resumed from its own offsets and the window was
// republished), its audit chains verify (`pms audit verify`), the sessions of before are
// gone (the old access token and refresh token are refused), and a new patient's MRN is
// above every MRN ever handed out, those given after the backup included. A restore into the
// folder of a running platform is refused and changes nothing.
func TestBackupRestore(t *testing.T) {
	w := newBackupWorld(t)
	a, stop := w.start(w.dataDir)
	login := func(a map[string]string) (token, refresh string) {
		resp, b := call(t, "POST", "http://"+a["gateway/http"]+"/auth/login", "", `{"email":"`+allAdminEmail+`","password":"`+adminPassword+`"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("login: %d %s", resp.StatusCode, b)
		}
		var p struct{ Token, RefreshToken string }
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		return p.Token, p.RefreshToken
	}
	token, refresh := login(a)
	// A second session, revoked after the backup: it must not come back with the restore.
	_, revoked := login(a)

	// The load: 50 clients, each creating patients one after another until told to stop.
	var (
		mu              sync.Mutex
		acked           = map[string]string{} // id → MRN, every 201
		ackedBefore     map[string]string     // those acknowledged before the backup began
		failed, created atomic.Int64
		stopLoad        = make(chan struct{})
		wg              sync.WaitGroup
		failures        []string
		slowest         time.Duration // the slowest acknowledged create (a figure, not asserted)
	)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for c := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				began := time.Now()
				id, mrn, code, err := createPatient(client, a["gateway/http"], token, fmt.Sprintf("c%d-%d", c, i))
				took := time.Since(began)
				mu.Lock()
				slowest = max(slowest, took)
				if code == 201 && err == nil {
					acked[id] = mrn
					created.Add(1)
				} else {
					failed.Add(1)
					failures = append(failures, fmt.Sprintf("%d %v", code, err))
				}
				mu.Unlock()
			}
		}()
	}
	polltest.Until(t, 30*time.Second, "the load to create 100 patients", func() bool { return created.Load() >= 100 })
	mu.Lock()
	ackedBefore = make(map[string]string, len(acked))
	for id, mrn := range acked {
		ackedBefore[id] = mrn
	}
	mu.Unlock()
	file := filepath.Join(t.TempDir(), "pms.backup")
	backupStart := time.Now()
	if out, err := w.pms("backup", "--data-dir", w.dataDir, "--to", file, "--recipient", w.recipient); err != nil {
		t.Fatalf("pms backup under load: %v\n%s", err, out)
	}
	backupTook := time.Since(backupStart)
	if resp, b := call(t, "POST", "http://"+a["gateway/http"]+"/auth/logout", "", `{"refreshToken":"`+revoked+`"}`); resp.StatusCode != 204 {
		t.Fatalf("logout after the backup: %d %s", resp.StatusCode, b)
	}
	duringBackup := created.Load()
	polltest.Until(t, 30*time.Second, "the load to go on after the backup", func() bool { return created.Load() >= duringBackup+50 })
	close(stopLoad)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d requests failed while the backup ran: %v", n, failures[:min(5, len(failures))])
	}
	t.Logf("FIGURES backup under load: took %v; %d patients created by 50 clients, 0 failed, slowest create %v; %d acknowledged before the backup began",
		backupTook.Round(time.Millisecond), created.Load(), slowest.Round(time.Millisecond), len(ackedBefore))
	highest := int64(0)
	for _, mrn := range acked {
		highest = max(highest, registration(t, mrn))
	}

	// The file: encrypted (no name or e-mail in clear), and it verifies.
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{"Backup Person", "@example.org", "Restore Road", "SQLite format", "audit_log"} {
		if bytes.Contains(raw, []byte(clear)) {
			t.Fatalf("the backup holds %q in clear", clear)
		}
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file mode %v", fi.Mode())
	}
	out, err := w.pms("backup", "verify", "--from", file, "--identity", w.keyFile)
	if err != nil || !strings.Contains(out, "backup verified") {
		t.Fatalf("pms backup verify: %v\n%s", err, out)
	}
	t.Logf("FIGURES backup file %d bytes; %s", len(raw), strings.ReplaceAll(strings.TrimSpace(out), "\n", "; "))

	// A running platform holds its folder: the restore is refused and nothing changes.
	before := listing(t, w.dataDir)
	out, err = w.pms("restore", "--from", file, "--identity", w.keyFile, "--data-dir", w.dataDir)
	if !errors.Is(err, dirlock.ErrHeld) {
		t.Fatalf("restore over a running platform: %v\n%s", err, out)
	}
	if after := listing(t, w.dataDir); after != before {
		t.Fatalf("a refused restore changed the data folder:\n%s\n---\n%s", before, after)
	}

	// The restored platform: every patient acknowledged before the backup, its billing
	// account, no session of before, MRNs above all handed out, chains that verify.
	check := func(t *testing.T, dataDir string) {
		r, stopR := w.start(dataDir)
		gw := "http://" + r["gateway/http"]
		t.Run("sessions", func(t *testing.T) {
			if resp, _ := call(t, "GET", gw+"/api/patients?limit=1", token, ""); resp.StatusCode != 401 {
				t.Fatalf("an access token of before the restore answered %d", resp.StatusCode)
			}
			if resp, b := call(t, "POST", gw+"/auth/refresh", "", `{"refreshToken":"`+refresh+`"}`); resp.StatusCode != 401 {
				t.Fatalf("a refresh token of before the restore answered %d %s", resp.StatusCode, b)
			}
			if resp, b := call(t, "POST", gw+"/auth/refresh", "", `{"refreshToken":"`+revoked+`"}`); resp.StatusCode != 401 {
				t.Fatalf("a session revoked after the backup came back: %d %s", resp.StatusCode, b)
			}
		})
		tok, _ := login(r)
		t.Run("records", func(t *testing.T) {
			var one string
			for id, mrn := range ackedBefore {
				resp, b := call(t, "GET", gw+"/api/patients/"+id, tok, "")
				if resp.StatusCode != 200 || !strings.Contains(string(b), mrn) {
					t.Fatalf("patient %s acknowledged before the backup: %d %s", id, resp.StatusCode, b)
				}
				one = id
			}
			// A restored record takes changes.
			resp, b := call(t, "PUT", gw+"/api/patients/"+one, tok,
				`{"name":"Restored Person","email":"restored-`+strings.ReplaceAll(t.Name(), "/", "-")+`@example.org","address":"2 Restore Road","dateOfBirth":"1980-02-03"}`)
			if resp.StatusCode != 200 {
				t.Fatalf("update of a restored patient: %d %s", resp.StatusCode, b)
			}
		})
		t.Run("events", func(t *testing.T) {
			// Every restored patient gets its billing account (the consumer resumes from its
			// own offsets, the backup window is on the topics again), no account of a patient
			// the restore took away (fenced), and analytics counts each registration once.
			var patients []string
			pd, err := db.Open(context.Background(), "sqlite://"+filepath.Join(dataDir, "patient.db"), "patient")
			if err != nil {
				t.Fatal(err)
			}
			if err := pd.Select(&patients, `SELECT id FROM patients`); err != nil {
				t.Fatal(err)
			}
			pd.Close()
			var ghosts int
			polltest.Until(t, 60*time.Second, "a billing account for every restored patient", func() bool {
				bd, err := db.Open(context.Background(), "sqlite://"+filepath.Join(dataDir, "billing.db"), "billing")
				if err != nil {
					return false
				}
				defer bd.Close()
				var accounts []string
				if err := bd.Select(&accounts, `SELECT patient_id FROM accounts`); err != nil {
					return false
				}
				have := map[string]bool{}
				for _, a := range accounts {
					have[a] = true
				}
				missing := 0
				for _, p := range patients {
					if !have[p] {
						missing++
					}
				}
				ghosts = len(accounts) - (len(patients) - missing)
				return missing == 0
			})
			sum := pollSummary(t, "http://"+r["analytics/http"], tok, func(s analytics.Summary) bool {
				return s.Patients.Registered == int64(len(patients))
			})
			if ghosts != 0 {
				t.Fatalf("%d accounts of patients the restore took away (their events were not fenced)", ghosts)
			}
			t.Logf("FIGURES %s: %d patients restored, each with its account, no other account; analytics counts %d registrations",
				t.Name(), len(patients), sum.Patients.Registered)
		})
		t.Run("identifiers", func(t *testing.T) {
			_, mrn, code, err := createPatient(client, r["gateway/http"], tok, strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
			if code != 201 || err != nil {
				t.Fatalf("create after the restore: %d %v", code, err)
			}
			if n := registration(t, mrn); n <= highest {
				t.Fatalf("the MRN after the restore, %s, reuses a registration number handed out before (highest %d)", mrn, highest)
			}
		})
		if err := stopR(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		t.Run("audit", func(t *testing.T) {
			if out, err := w.pms("audit", "verify", "--data-dir", dataDir); err != nil {
				t.Fatalf("pms audit verify: %v\n%s", err, out)
			}
		})
	}

	// Into a fresh data folder (another machine; the broker's topics start empty).
	fresh := t.TempDir()
	// The files no backup holds, as docs/operations.md says: the marks, and issue 17's
	// erasure journal and data key-encryption key where they exist.
	for _, name := range []string{"sequences-patient.json", "sequences-billing.json", "patient-erasures.jsonl", "patient-data.key"} {
		if _, err := os.Stat(filepath.Join(w.dataDir, name)); err == nil {
			copyFile(t, filepath.Join(w.dataDir, name), filepath.Join(fresh, name))
		}
	}
	start := time.Now()
	if out, err := w.pms("restore", "--from", file, "--identity", w.keyFile, "--data-dir", fresh); err != nil {
		t.Fatalf("restore into a fresh folder: %v\n%s", err, out)
	}
	t.Logf("FIGURES restore into a fresh folder took %v", time.Since(start).Round(time.Millisecond))
	t.Run("fresh", func(t *testing.T) { check(t, fresh) })

	// In place, over the stopped platform's own folder.
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if out, err := w.pms("restore", "--from", file, "--identity", w.keyFile, "--data-dir", w.dataDir); err != nil {
		t.Fatalf("restore in place: %v\n%s", err, out)
	}
	t.Run("in place", func(t *testing.T) { check(t, w.dataDir) })
}

// listing names every file under dir (the lock, SQLite's companions and the broker's aside).
func listing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Name() == dirlock.FileName {
			return err
		}
		if strings.HasSuffix(p, "-wal") || strings.HasSuffix(p, "-shm") || strings.Contains(p, string(filepath.Separator)+"kafka") {
			return nil // a running platform's own files move on their own
		}
		fmt.Fprintf(&b, "%s\n", strings.TrimPrefix(p, dir))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// digest is every file under dir with a SHA-256 of its content (the lock file aside).
func digest(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Name() == dirlock.FileName {
			return err
		}
		c, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %x\n", strings.TrimPrefix(p, dir), sha256.Sum256(c))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestRestoreRefuses: a backup opened with another identity, cut short, with one byte
// changed, or taken by a release with a newer schema, is refused by `pms backup verify` and
// by `pms restore` with a clear error, and the restore writes nothing: a stopped platform's
// data folder is byte for byte what it was, a fresh one gets no file.
func TestRestoreRefuses(t *testing.T) {
	w := newBackupWorld(t)
	a, stop := w.start(w.dataDir)
	if _, _, code, err := createPatient(http.DefaultClient, a["gateway/http"], allToken(t, a), "refuse"); code != 201 || err != nil {
		t.Fatalf("create: %d %v", code, err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.backup")
	if out, err := w.pms("backup", "--data-dir", w.dataDir, "--to", good, "--recipient", w.recipient); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if out, err := w.pms("backup", "--data-dir", w.dataDir, "--to", good, "--recipient", w.recipient); err == nil || !strings.Contains(err.Error(), "never overwritten") {
		t.Fatalf("a second backup to the same file: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	altered := append([]byte(nil), raw...)
	altered[len(altered)/2] ^= 0x01

	// A backup of a database whose schema is newer than this release's migrations.
	newer := t.TempDir()
	for _, f := range []string{"auth.db", "patient.db", "billing.db", "gateway.db", "analytics.db"} {
		copyFile(t, filepath.Join(w.dataDir, f), filepath.Join(newer, f))
	}
	nd, err := db.Open(context.Background(), "sqlite://"+filepath.Join(newer, "patient.db"), "patient")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nd.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, 1)`); err != nil {
		t.Fatal(err)
	}
	nd.Close()
	newerFile := filepath.Join(dir, "newer.backup")
	if out, err := w.pms("backup", "--data-dir", newer, "--to", newerFile, "--recipient", w.recipient); err != nil {
		t.Fatalf("backup of the newer schema: %v\n%s", err, out)
	}
	// A backup made by someone who knows the recipient, carrying a file no backup holds.
	foreign := filepath.Join(dir, "foreign.backup")
	{
		id, err := readIdentity(w.keyFile)
		if err != nil {
			t.Fatal(err)
		}
		x := t.TempDir()
		gf, err := os.Open(good)
		if err != nil {
			t.Fatal(err)
		}
		m, err := backup.Extract(gf, id, x)
		gf.Close()
		if err != nil {
			t.Fatal(err)
		}
		put := filepath.Join(x, "kafka", "credentials")
		if err := os.MkdirAll(filepath.Dir(put), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(put, []byte("admin chosen-by-the-forger\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := m.Describe(x, "kafka/credentials"); err != nil {
			t.Fatal(err)
		}
		r, err := parseRecipient(w.recipient)
		if err != nil {
			t.Fatal(err)
		}
		ff, err := os.Create(foreign)
		if err != nil {
			t.Fatal(err)
		}
		if err := backup.Write(ff, r, m, x); err != nil {
			t.Fatal(err)
		}
		ff.Close()
	}
	otherKey := filepath.Join(t.TempDir(), "other.key")
	if _, err := w.pms("backup", "keygen", "--out", otherKey); err != nil {
		t.Fatal(err)
	}
	if _, err := w.pms("backup", "keygen", "--out", otherKey); err == nil {
		t.Fatal("keygen replaced an existing identity file")
	}

	for _, tc := range []struct {
		name, file, key string
		want            error
	}{
		{"wrong key", good, otherKey, backup.ErrDecrypt},
		{"truncated", write("truncated.backup", raw[:len(raw)*2/3]), w.keyFile, backup.ErrCorrupt},
		{"cut at the very end", write("short.backup", raw[:len(raw)-1]), w.keyFile, backup.ErrCorrupt},
		{"altered", write("altered.backup", altered), w.keyFile, backup.ErrCorrupt},
		{"not a backup", write("text.backup", []byte("hello\n")), w.keyFile, backup.ErrDecrypt},
		{"newer schema", newerFile, w.keyFile, backup.ErrNewerSchema},
		{"a member no backup holds", foreign, w.keyFile, backup.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := w.pms("backup", "verify", "--from", tc.file, "--identity", tc.key); !errors.Is(err, tc.want) {
				t.Fatalf("verify: %v, want %v\n%s", err, tc.want, out)
			}
			before := digest(t, w.dataDir)
			out, err := w.pms("restore", "--from", tc.file, "--identity", tc.key, "--data-dir", w.dataDir)
			if !errors.Is(err, tc.want) {
				t.Fatalf("restore in place: %v, want %v\n%s", err, tc.want, out)
			}
			t.Logf("%s: %v", tc.name, err)
			if after := digest(t, w.dataDir); after != before {
				t.Fatalf("a refused restore changed the data folder:\n%s---\n%s", before, after)
			}
			fresh := t.TempDir()
			if _, err := w.pms("restore", "--from", tc.file, "--identity", tc.key, "--data-dir", fresh); !errors.Is(err, tc.want) {
				t.Fatalf("restore into a fresh folder: %v", err)
			}
			if got := digest(t, fresh); got != "" {
				t.Fatalf("a refused restore wrote:\n%s", got)
			}
		})
	}
	// The good one restores, and the stopped platform's folder is left as the backup had it.
	if out, err := w.pms("restore", "--from", good, "--identity", w.keyFile, "--data-dir", w.dataDir); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
}

// TestConsumerResumesFromItsOwnOffsets (section 3, events): billing's consumer of the patient
// topic keeps the offsets it applied in its own database and resumes from them. Billing's
// database is brought back to an earlier copy (a restore of billing alone, without the
// republishing `pms restore` adds) while the broker's committed offsets stay ahead: the
// accounts of the patients registered since the copy come back from the topic (resuming
// from the broker's offsets would skip them for good), and none is opened twice.
func TestConsumerResumesFromItsOwnOffsets(t *testing.T) {
	w := newBackupWorld(t)
	billingDB := filepath.Join(w.dataDir, "billing.db")
	count := func(query string) int {
		d, err := db.Open(context.Background(), "sqlite://"+billingDB, "billing")
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var n int
		if err := d.Get(&n, query); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const processed = `SELECT count(*) FROM processed_events WHERE consumer = 'billing/patient'`
	run := func(from, to int) {
		a, stop := w.start(w.dataDir)
		tok := allToken(t, a)
		for i := from; i < to; i++ {
			if _, _, code, err := createPatient(http.DefaultClient, a["gateway/http"], tok, fmt.Sprintf("resume-%d", i)); code != 201 || err != nil {
				t.Fatalf("create: %d %v", code, err)
			}
		}
		polltest.Until(t, 30*time.Second, "billing's consumer to apply every patient event", func() bool { return count(processed) == to })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	run(0, 3)
	saved := filepath.Join(t.TempDir(), "billing.db")
	copyFile(t, billingDB, saved)
	run(3, 6)
	if n := count(`SELECT count(*) FROM accounts`); n != 6 {
		t.Fatalf("%d accounts before the restore", n)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		_ = os.Remove(billingDB + suffix)
	}
	copyFile(t, saved, billingDB)
	if n := count(`SELECT count(*) FROM accounts`); n != 3 {
		t.Fatalf("%d accounts in the earlier copy", n)
	}
	_, stop := w.start(w.dataDir)
	polltest.Until(t, 30*time.Second, "the accounts of the patients registered since the copy", func() bool {
		return count(`SELECT count(*) FROM accounts`) == 6 && count(processed) == 6
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestErasureSurvivesPmsRestore (section 3, erasure; issue 17's TestErasureSurvivesRestore
// puts a database file back by hand): a patient erased after a backup stays erased when that
// backup is restored in place by pms restore (issue 17 keeps its erasure journal outside
// the database and out of the backups, and the patient service applies it again at start;
// pms restore never touches it). It runs over HTTP only, and skips itself while the erase
// route is not there (the branch that built the backups predates issue 17's erasure).
func TestErasureSurvivesPmsRestore(t *testing.T) {
	w := newBackupWorld(t)
	a, stop := w.start(w.dataDir)
	tok := allToken(t, a)
	gw := "http://" + a["gateway/http"]
	id, _, code, err := createPatient(http.DefaultClient, a["gateway/http"], tok, "erase")
	if code != 201 || err != nil {
		t.Fatalf("create: %d %v", code, err)
	}
	file := filepath.Join(t.TempDir(), "before-erasure.backup")
	if out, err := w.pms("backup", "--data-dir", w.dataDir, "--to", file, "--recipient", w.recipient); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if resp, b := call(t, "DELETE", gw+"/api/patients/"+id, tok, ""); resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	resp, b := call(t, "POST", gw+"/api/patients/"+id+"/erase", tok, `{"reason":"the patient asked for erasure in writing"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("erase: POST /api/patients/{id}/erase answered %d %s", resp.StatusCode, b)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if out, err := w.pms("restore", "--from", file, "--identity", w.keyFile, "--data-dir", w.dataDir); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	r, stopR := w.start(w.dataDir)
	tok = allToken(t, r)
	if resp, b := call(t, "GET", "http://"+r["gateway/http"]+"/api/patients/"+id, tok, ""); resp.StatusCode != 410 {
		t.Fatalf("the patient erased after the backup, after its restore: %d %s", resp.StatusCode, b)
	}
	if err := stopR(); err != nil {
		t.Fatal(err)
	}
}

// TestScheduledBackups: `pms all --backup-every` backs itself up on a schedule into
// --backup-dir, keeps the newest --backup-keep, and reports on the gateway's admin port the
// last success, the duration, the size and the failures; a kept backup verifies. Backups
// that fail are counted and the platform serves on; a schedule it cannot honour stops the
// start.
func TestScheduledBackups(t *testing.T) {
	w := newBackupWorld(t)
	dir := t.TempDir()
	a, stop := startPMS(t, allAddrs, allArgs(t, "", "--data-dir="+w.dataDir, "--backup-every=150ms", "--backup-dir="+dir,
		"--backup-keep=2", "--backup-recipient="+w.recipient)...)
	backups := func() []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".backup") {
				names = append(names, e.Name())
			}
		}
		return names
	}
	var first string
	polltest.Until(t, 30*time.Second, "a scheduled backup", func() bool {
		if n := backups(); len(n) > 0 {
			first = n[0]
			return true
		}
		return false
	})
	polltest.Until(t, 30*time.Second, "the first backup to be pruned", func() bool {
		n := backups()
		for _, name := range n {
			if name == first {
				return false
			}
		}
		return len(n) > 0
	})
	if n := backups(); len(n) > 2 {
		t.Fatalf("--backup-keep=2 kept %d", len(n))
	}
	if v := metric(t, a["gateway/admin"], "pms_backup_last_success_timestamp_seconds"); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("last success %v", v)
	}
	if v := metric(t, a["gateway/admin"], "pms_backup_size_bytes"); v <= 0 {
		t.Fatalf("size %v", v)
	}
	if v := metric(t, a["gateway/admin"], "pms_backup_failures_total"); v != 0 {
		t.Fatalf("failures %v", v)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	n := backups()
	if out, err := w.pms("backup", "verify", "--from", filepath.Join(dir, n[len(n)-1]), "--identity", w.keyFile); err != nil {
		t.Fatalf("verify a scheduled backup: %v\n%s", err, out)
	}
	// A backup that cannot be written (its folder is a file) is counted, and never stops
	// the platform.
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, stopF := startPMS(t, allAddrs, allArgs(t, "", "--data-dir="+t.TempDir(), "--backup-every=100ms", "--backup-dir="+notADir,
		"--backup-recipient="+w.recipient)...)
	polltest.Until(t, 30*time.Second, "a failed backup to be counted", func() bool {
		return metric(t, f["gateway/admin"], "pms_backup_failures_total") >= 2
	})
	if v := metric(t, f["gateway/admin"], "pms_backup_last_success_timestamp_seconds"); v != 0 {
		t.Fatalf("last success %v after failures only", v)
	}
	if resp, _ := call(t, "GET", "http://"+f["gateway/admin"]+"/readyz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("the platform with failing backups is not ready: %d", resp.StatusCode)
	}
	if err := stopF(); err != nil {
		t.Fatal(err)
	}
	err := dispatch(context.Background(), allArgs(t, "sqlite://"+filepath.Join(t.TempDir(), "x.db"), "--backup-every=1h", "--backup-dir="+dir,
		"--backup-recipient="+w.recipient), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--backup-every") {
		t.Fatalf("a schedule on --database-url started: %v", err)
	}
}

// TestMRNsSurvivePostgresRewind (issue 23, section 3, identifiers, on PostgreSQL): `pms
// patient` registers patients; the database is then brought back to before the last ones (the
// rows deleted and the identity sequence restarted, as a point-in-time recovery leaves them);
// started again on its data folder, the service hands out an MRN above every MRN handed out
// before, never one a wristband already carries.
func TestMRNsSurvivePostgresRewind(t *testing.T) {
	url := dbtest.PostgresDatabase(t)
	dir := t.TempDir()
	brokerAddr := brokertest.Start(t).Addr()
	start := func() (patient.Set, func() error) {
		a, stop := startPMS(t, patientAddrs, "patient", jwksArg(), "--http-addr=127.0.0.1:0", "--grpc-addr=127.0.0.1:0",
			"--admin-addr=127.0.0.1:0", "--data-dir="+dir, "--database-url="+url, "--log-format=logfmt",
			"--log-level=error", "--billing-addr=", "--kafka-brokers="+brokerAddr)
		c, err := httptransport.NewPatientClient("http://"+a["patient/http"], httptransport.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return c, stop
	}
	doc := authed(t, "doc-1", authz.RoleClinician)
	c, stop := start()
	var last patient.Patient
	for i := range 3 {
		p, err := c.Create(doc, patient.CreateRequest{Name: fmt.Sprintf("Rewind %d", i), Email: fmt.Sprintf("rewind%d@example.org", i),
			Address: "1 Main St", DateOfBirth: "1980-01-02"})
		if err != nil {
			t.Fatal(err)
		}
		last = p
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := db.Open(ctx, url, "patient")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// The rewind: back to before the second registration.
	if _, err := d.ExecContext(ctx, `DELETE FROM patient_versions WHERE patient_id IN (SELECT id FROM patients WHERE seq > 1);
		DELETE FROM patient_match_keys WHERE patient_id IN (SELECT id FROM patients WHERE seq > 1);
		DELETE FROM patient_identifiers WHERE patient_id IN (SELECT id FROM patients WHERE seq > 1);
		DELETE FROM outbox; DELETE FROM patients WHERE seq > 1; ALTER TABLE patients ALTER COLUMN seq RESTART WITH 2`); err != nil {
		t.Fatal(err)
	}
	c, stop = start()
	defer stop()
	p, err := c.Create(doc, patient.CreateRequest{Name: "After Rewind", Email: "after-rewind@example.org", Address: "1 Main St", DateOfBirth: "1980-01-02"})
	if err != nil {
		t.Fatal(err)
	}
	if p.MRN <= last.MRN {
		t.Fatalf("after the rewind the MRN %s was handed out; %s was already", p.MRN, last.MRN)
	}
}

// TestSessionsEndAfterPostgresRewind (issue 23, section 3, sessions, on PostgreSQL): `pms
// auth` signs the admin in twice and one session logs out (a revocation); the database is
// then brought back to before the logout (the revocation gone, the refresh tokens live again,
// as a point-in-time recovery leaves them). Started again, auth sees its database behind the
// revocations mark kept outside it: the logged-out session does not come back, every other
// session ends too, and an access token from before is refused (the signing key replaced).
func TestSessionsEndAfterPostgresRewind(t *testing.T) {
	t.Setenv(bootstrapPasswordEnv, adminPassword)
	url := dbtest.PostgresDatabase(t)
	dir := t.TempDir()
	a, stop := startPMS(t, authAddrs, authArgs(t, dir, url)...)
	base := "http://" + a["auth/http"]
	login := func() (string, string) {
		resp, b := call(t, "POST", base+"/login", "", `{"email":"admin@pms.local","password":"`+adminPassword+`"}`)
		var p struct{ Token, RefreshToken string }
		if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("login: %d %s", resp.StatusCode, b)
		}
		return p.Token, p.RefreshToken
	}
	tokenA, refreshA := login()
	_, refreshB := login()
	if resp, b := call(t, "POST", base+"/logout", "", `{"refreshToken":"`+refreshB+`"}`); resp.StatusCode/100 != 2 {
		t.Fatalf("logout: %d %s", resp.StatusCode, b)
	}
	if resp, _ := call(t, "POST", base+"/refresh", "", `{"refreshToken":"`+refreshB+`"}`); resp.StatusCode != 401 {
		t.Fatalf("a logged-out session refreshed: %d", resp.StatusCode)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := db.Open(ctx, url, "auth")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.ExecContext(ctx, `DELETE FROM revocations; SELECT setval(pg_get_serial_sequence('revocations', 'seq'), 1, false);
		UPDATE refresh_tokens SET revoked_at = NULL`); err != nil {
		t.Fatal(err)
	}

	a, _ = startPMS(t, authAddrs, authArgs(t, dir, url)...)
	base = "http://" + a["auth/http"]
	for name, r := range map[string]string{"the logged-out session": refreshB, "another session": refreshA} {
		if resp, b := call(t, "POST", base+"/refresh", "", `{"refreshToken":"`+r+`"}`); resp.StatusCode != 401 {
			t.Fatalf("%s after the rewind: %d %s", name, resp.StatusCode, b)
		}
	}
	if resp, _ := call(t, "GET", base+"/validate", tokenA, ""); resp.StatusCode != 401 {
		t.Fatalf("an access token from before the rewind: %d", resp.StatusCode)
	}
	if tok, _ := login(); tok == "" {
		t.Fatal("no sign-in after the rewind")
	}
}
