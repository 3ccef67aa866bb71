package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/backup"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/dirlock"
	"github.com/pms/pms/pkg/platform/outbox"
	"github.com/pms/pms/pkg/platform/privfile"
	"github.com/pms/pms/pkg/platform/seqmark"
)

func init() {
	commands["backup"] = command{"pms backup --data-dir DIR --to FILE --recipient age1...: an encrypted online backup of the embedded databases and keys (pms backup keygen, pms backup verify)", runBackup}
	commands["restore"] = command{"pms restore --from FILE --identity KEYFILE --data-dir DIR: verify a backup and put it in place of a stopped platform's data", runRestore}
}

// backupServices are the databases a backup holds, in the order they are snapshotted:
// consumers before the services whose events they read (analytics reads every topic, billing
// reads patient's), so what a consumer's snapshot has applied is always in the later
// snapshot of its source, and what the source committed after the consumer's snapshot is
// still ahead of the consumer's stored offsets, which it resumes from after a restore
// (docs/operations.md, "What a restore means"). The gateway's database holds only its own
// audit log of refusals and follows no one.
var backupServices = []struct {
	name string
	sets func() db.Sets
}{
	{"analytics", migrations.Analytics}, {"billing", migrations.Billing}, {"patient", migrations.Patient},
	{"auth", migrations.Auth}, {"gateway", migrations.Gateway},
}

// backupKeyFiles are the key files under the data folder a backup carries (those that
// exist): without them a restored platform cannot check TOTP codes (the MFA sealing key),
// link search fingerprints (the patient search key) or extend its signed audit checkpoints.
// The auth key ring is carried too, though a restore replaces its signing key (sessions end).
// Kafka credentials are the broker's, not the data's: a new embedded broker makes its own.
func backupKeyFiles() []string {
	names := []string{auth.KeyFileName, auth.MFAKeyFileName, patient.SearchKeyFileName}
	for _, svc := range auditServices {
		if svc.published {
			names = append(names, filepath.Base(audit.CheckpointKeyFile("", svc.name)))
		}
	}
	return names
}

// runBackup is `pms backup` and its subcommands keygen and verify.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "keygen":
			return runBackupKeygen(args[1:], stdout, stderr)
		case "verify":
			return runBackupVerify(ctx, args[1:], stdout, stderr)
		}
	}
	f := newFlags("backup", stderr)
	var dataDir, to, recipient string
	var timeout time.Duration
	f.String(&dataDir, "data-dir", "./data", "the platform's data folder (its SQLite databases and keys)", "PMS_DATA_DIR")
	f.String(&to, "to", "", "the backup file to write (must not exist)", "PMS_BACKUP_TO")
	f.String(&recipient, "recipient", "", "the age recipient (age1...) the backup is encrypted to; its identity is kept away from the platform and the backups", "PMS_BACKUP_RECIPIENT")
	f.Duration(&timeout, "timeout", 30*time.Minute, "how long the backup may take", "PMS_BACKUP_TIMEOUT").positive()
	if err := f.parse(args); err != nil {
		return err
	}
	if to == "" {
		return errors.New("--to: the backup file to write is required")
	}
	r, err := parseRecipient(recipient)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, size, err := takeBackup(ctx, dataDir, r, to)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup: %s, %d bytes, %d databases, %d members\n", to, size, len(m.Databases), len(m.Files))
	return nil
}

// parseRecipient reads --recipient.
func parseRecipient(s string) (age.Recipient, error) {
	if s == "" {
		return nil, errors.New("--recipient (PMS_BACKUP_RECIPIENT): the age recipient is required (pms backup keygen prints one)")
	}
	r, err := age.ParseX25519Recipient(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("--recipient: not an age X25519 recipient (age1...): %w", err)
	}
	return r, nil
}

// takeBackup writes the backup of dataDir to out, encrypted to r: each database snapshotted
// online in backupServices' order, the key files, and the manifest. out appears whole or not
// at all (written beside it, synced, then renamed; an existing file is never replaced). It
// returns the manifest and the file's size.
func takeBackup(ctx context.Context, dataDir string, r age.Recipient, out string) (backup.Manifest, int64, error) {
	m := backup.Manifest{Format: backup.Format, Release: backup.Release(), CreatedAt: time.Now().UTC()}
	if _, err := os.Stat(out); err == nil {
		return m, 0, fmt.Errorf("--to %s exists: a backup is never overwritten", out)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return m, 0, err
	}
	work, err := os.MkdirTemp(filepath.Dir(out), ".pms-backup-")
	if err != nil {
		return m, 0, err
	}
	defer os.RemoveAll(work)
	for _, svc := range backupServices {
		file := svc.name + ".db"
		src := filepath.Join(dataDir, file)
		if _, err := os.Stat(src); err != nil {
			return m, 0, fmt.Errorf("%s: no %s under %s: pms backup covers the embedded SQLite databases (PostgreSQL: pgBackRest, docs/operations.md)", svc.name, file, dataDir)
		}
		at := time.Now().UTC()
		if err := backup.Snapshot(ctx, src, filepath.Join(work, file)); err != nil {
			return m, 0, err
		}
		d, err := backup.Inspect(ctx, svc.name, filepath.Join(work, file), svc.sets())
		if err != nil {
			return m, 0, err
		}
		d.File, d.SnapshotAt = file, at
		m.Databases = append(m.Databases, d)
		if err := m.Describe(work, file); err != nil {
			return m, 0, err
		}
	}
	for _, name := range backupKeyFiles() {
		b, err := os.ReadFile(filepath.Join(dataDir, filepath.FromSlash(name)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return m, 0, err
		}
		if err := privfile.Write(filepath.Join(work, filepath.FromSlash(name)), b, true); err != nil {
			return m, 0, err
		}
		if err := m.Describe(work, name); err != nil {
			return m, 0, err
		}
	}
	tmp := filepath.Join(work, "backup.age")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return m, 0, err
	}
	err = backup.Write(f, r, m, work)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return m, 0, err
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		return m, 0, err
	}
	// A link, not a rename: it fails when out appeared meanwhile instead of replacing it.
	if err := os.Link(tmp, out); err != nil {
		return m, 0, err
	}
	return m, fi.Size(), nil
}

// runBackupKeygen is `pms backup keygen --out KEYFILE`: a new age X25519 identity, written
// with mode 0600 (never over an existing file), its recipient printed.
func runBackupKeygen(args []string, stdout, stderr io.Writer) error {
	f := newFlags("backup keygen", stderr)
	var out string
	f.String(&out, "out", "", "the identity file to create (mode 0600; keep it away from the platform and from the backups)", "PMS_BACKUP_KEYGEN_OUT")
	if err := f.parse(args); err != nil {
		return err
	}
	if out == "" {
		return errors.New("--out: the identity file to create is required")
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	content := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	if err := privfile.Write(out, []byte(content), true); err != nil {
		return fmt.Errorf("--out %s: %w", out, err)
	}
	fmt.Fprintln(stdout, id.Recipient().String())
	return nil
}

// readIdentity reads an identity file written by pms backup keygen (or age-keygen).
func readIdentity(path string) (age.Identity, error) {
	if path == "" {
		return nil, errors.New("--identity: the identity file is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--identity: %w", err)
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(b)))
	if err != nil || len(ids) != 1 {
		return nil, fmt.Errorf("--identity %s: not one age identity", path)
	}
	return ids[0], nil
}

// backupSource are the flags naming a backup and its identity.
type backupSource struct{ from, identity string }

func (b *backupSource) register(f *flags) {
	f.String(&b.from, "from", "", "the backup file", "PMS_RESTORE_FROM")
	f.String(&b.identity, "identity", "", "the age identity file the backup is encrypted to (pms backup keygen)", "PMS_RESTORE_IDENTITY")
}

// extract decrypts the backup into dir and checks it whole: every member against the
// manifest, every database against its entry and this release (backup.Check).
func (b backupSource) extract(ctx context.Context, dir string) (backup.Manifest, error) {
	id, err := readIdentity(b.identity)
	if err != nil {
		return backup.Manifest{}, err
	}
	if b.from == "" {
		return backup.Manifest{}, errors.New("--from: the backup file is required")
	}
	f, err := os.Open(b.from)
	if err != nil {
		return backup.Manifest{}, fmt.Errorf("--from: %w", err)
	}
	defer f.Close()
	m, err := backup.Extract(f, id, dir)
	if err != nil {
		return m, err
	}
	// Only the members a backup is made of: age proves a file whole, not who wrote it (anyone
	// with the recipient can encrypt to it), so nothing else is ever put in the data folder.
	allowed := map[string]bool{}
	for _, svc := range backupServices {
		allowed[svc.name+".db"] = true
	}
	for _, name := range backupKeyFiles() {
		allowed[name] = true
	}
	for _, f := range m.Files {
		if !allowed[f.Name] {
			return m, fmt.Errorf("%w: member %q is not part of a pms backup", backup.ErrCorrupt, f.Name)
		}
	}
	for _, svc := range backupServices {
		var entry *backup.Database
		for i := range m.Databases {
			if m.Databases[i].Service == svc.name {
				entry = &m.Databases[i]
			}
		}
		if entry == nil || entry.File != svc.name+".db" {
			return m, fmt.Errorf("%w: the manifest has no %s database", backup.ErrCorrupt, svc.name)
		}
		if err := backup.Check(ctx, filepath.Join(dir, entry.File), *entry, svc.sets()); err != nil {
			return m, err
		}
	}
	return m, nil
}

// runBackupVerify is `pms backup verify --from FILE --identity KEYFILE`: decrypt and check
// everything in a temporary folder, restore nothing, print the manifest's summary.
func runBackupVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("backup verify", stderr)
	var src backupSource
	src.register(f)
	if err := f.parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pms-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	m, err := src.extract(ctx, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup verified: release %s, taken %s, %d members\n", m.Release, m.CreatedAt.Format(time.RFC3339), len(m.Files))
	for _, d := range m.Databases {
		rows := int64(0)
		for _, n := range d.Rows {
			rows += n
		}
		head := int64(0)
		if d.AuditHead != nil {
			head = d.AuditHead.Seq
		}
		fmt.Fprintf(stdout, "  %s: %d tables, %d rows, audit chain verified to seq %d\n", d.Service, len(d.Rows), rows, head)
	}
	return nil
}

// runRestore is `pms restore --from FILE --identity KEYFILE --data-dir DIR`. It takes the
// data folder's lock exclusive (so a running platform, which holds it shared, makes it
// refuse), undoes an earlier restore that was interrupted, decrypts and checks the whole
// backup into a folder beside the data (nothing is written in the data before every check
// passed), applies what a restore means (restoreEffects: sessions end, no identifier is
// handed out twice), and then swaps the files in by renames, keeping the ones replaced under
// <data-dir>/.pre-restore-<time>.
func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("restore", stderr)
	var src backupSource
	var dataDir string
	src.register(f)
	f.String(&dataDir, "data-dir", "./data", "the data folder to restore into (the platform on it must be stopped)", "PMS_DATA_DIR")
	if err := f.parse(args); err != nil {
		return err
	}
	if _, err := readIdentity(src.identity); err != nil {
		return err
	}
	if _, err := os.Stat(src.from); err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	lock, err := dirlock.Exclusive(dataDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	if undone, err := backup.Recover(dataDir); err != nil {
		return err
	} else if undone {
		fmt.Fprintln(stdout, "restore: an interrupted restore was undone first")
	}
	// A restore killed before its swap leaves its decrypted copy beside the data: remove it.
	if left, err := filepath.Glob(filepath.Join(dataDir, ".restore-*")); err == nil {
		for _, p := range left {
			if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
				_ = os.RemoveAll(p)
			}
		}
	}
	staged, err := os.MkdirTemp(dataDir, ".restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staged)
	m, err := src.extract(ctx, staged)
	if err != nil {
		return err
	}
	if err := restoreEffects(ctx, staged, dataDir, m); err != nil {
		return err
	}
	names := make([]string, 0, len(m.Files))
	for _, f := range m.Files {
		names = append(names, f.Name)
	}
	asideDir, err := os.MkdirTemp(dataDir, ".pre-restore-"+time.Now().UTC().Format("20060102T150405Z")+"-")
	if err != nil {
		return err
	}
	aside := filepath.Base(asideDir)
	if err := backup.Swap(staged, dataDir, aside, names); err != nil {
		return fmt.Errorf("restore: %w (what was there is back in place)", err)
	}
	fmt.Fprintf(stdout, "restored the backup of %s (release %s) into %s; the files it replaced are in %s\n",
		m.CreatedAt.Format(time.RFC3339), m.Release, dataDir, filepath.Join(dataDir, aside))
	fmt.Fprintln(stdout, "every session has ended: users sign in again")
	return nil
}

// restoreEffects makes the staged backup safe to run after the moment it was taken
// (docs/operations.md, "What a restore means"), before it is swapped in:
//   - sessions: every refresh token is revoked and the signing key replaced (the old one
//     trusted nowhere), so no session of before the restore, a revoked one included, comes
//     back;
//   - events: every event its outbox wrote from republishMargin before the backup began is
//     published again, with its event id (consumers dedupe): what was published while the
//     backup ran, perhaps after a consumer's snapshot, reaches that consumer even on new
//     topics, and what was not yet published at the snapshot is published as it would have
//     been; and each consumer is fenced off the events of the changes the restore took away
//     from its sources (fenceLostEvents);
//   - identifiers: every AUTOINCREMENT counter (the MRN's registration number, invoices,
//     payments, revocations, outbox ids) starts above the highest ever handed out on this
//     data folder: the greater of the backup's, the replaced database's and the high-water
//     mark the service keeps outside its database (seqmark).
func restoreEffects(ctx context.Context, staged, dataDir string, m backup.Manifest) error {
	d, err := db.Open(ctx, "sqlite://"+filepath.Join(staged, "auth.db"), "auth")
	if err != nil {
		return err
	}
	_, err = auth.EndEverySession(ctx, d, time.Now())
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restore: ending sessions: %w", err)
	}
	ring := filepath.Join(staged, auth.KeyFileName)
	if _, err := os.Stat(ring); err == nil {
		if _, _, err := auth.RotateKeyFile(ring, time.Now(), true); err != nil {
			return fmt.Errorf("restore: new signing key: %w", err)
		}
	}
	if err := fenceLostEvents(ctx, staged, m, time.Now()); err != nil {
		return err
	}
	for _, entry := range m.Databases {
		floors, err := highWaterMarks(ctx, dataDir, entry.Service)
		if err != nil {
			return err
		}
		d, err := db.Open(ctx, "sqlite://"+filepath.Join(staged, entry.File), entry.Service)
		if err != nil {
			return err
		}
		err = db.RaiseSequences(ctx, d, floors)
		if _, has := entry.Rows["outbox"]; has && err == nil {
			_, err = outbox.Republish(ctx, d, m.CreatedAt.Add(-republishMargin))
		}
		if _, has := entry.Rows["audit_published"]; has && err == nil {
			err = audit.Republish(ctx, d, m.CreatedAt.Add(-republishMargin))
		}
		if cerr := d.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("restore: %s: raising the counters: %w", entry.Service, err)
		}
	}
	return nil
}

// restoreFences are the topics a consumer's database is fenced on by a restore, with the
// services whose events each carries (the audit topic carries every publishing service's
// entries: it is fenced from the earliest of their snapshots, and what a later-snapshotted
// service committed in between is published again).
var restoreFences = []struct {
	consumer, topic string
	sources         []string
}{
	{"billing", patient.TopicEvents, []string{"patient"}},
	{"analytics", analytics.TopicPatient, []string{"patient"}},
	{"analytics", analytics.TopicBilling, []string{"billing"}},
	{"analytics", analytics.TopicAudit, []string{"billing", "patient", "auth", "gateway"}},
}

// fenceLostEvents fences, in each consumer's staged database, its source's topic from the
// moment the source's snapshot began to now: the events of that interval are of changes the
// restore took away (a patient registered after the backup is not in the restored patient
// database, but its PATIENT_CREATED stays on the topic), and the consumer, resuming from its
// own offsets, would otherwise apply them (an account for a patient who is not there). What
// the restored source had committed in the interval is published again (restoreEffects), so
// its events reach the consumer after the fence.
func fenceLostEvents(ctx context.Context, staged string, m backup.Manifest, now time.Time) error {
	snapshots := map[string]time.Time{}
	for _, d := range m.Databases {
		snapshots[d.Service] = d.SnapshotAt
	}
	for _, f := range restoreFences {
		var after time.Time
		for _, src := range f.sources {
			if at := snapshots[src]; after.IsZero() || at.Before(after) {
				after = at
			}
		}
		if after.IsZero() {
			continue
		}
		d, err := db.Open(ctx, "sqlite://"+filepath.Join(staged, f.consumer+".db"), f.consumer)
		if err != nil {
			return err
		}
		err = outbox.AddFence(ctx, d, outbox.Fence{Topic: f.topic, After: after, Until: now})
		if cerr := d.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("restore: fencing %s's %s events: %w", f.consumer, f.topic, err)
		}
	}
	return nil
}

// republishMargin is how long before a backup began the events a restore publishes again
// were written: longer than an event waits in the outbox while the relay runs.
const republishMargin = 5 * time.Minute

// highWaterMarks are the floors of service's counters on dataDir: for each, the greater of
// its high-water mark (seqmark's file, which no backup holds) and, when the database being
// replaced is there, that database's own counter. A database that is there but cannot be
// read stops the restore: moved away by hand, the marks file alone decides.
func highWaterMarks(ctx context.Context, dataDir, service string) (map[string]int64, error) {
	floors, err := seqmark.Read(seqmark.File(dataDir, service))
	if err != nil {
		return nil, err
	}
	old := filepath.Join(dataDir, service+".db")
	if _, err := os.Stat(old); err != nil {
		return floors, nil
	}
	d, err := backup.Inspect(ctx, service, old, nil)
	if err != nil {
		return nil, fmt.Errorf("restore: the database being replaced, %s, cannot be read for its counters (%v); if it is damaged, move it out of the data folder and run the restore again", old, err)
	}
	for table, n := range d.Sequences {
		floors[table] = max(floors[table], n)
	}
	return floors, nil
}
