// Package restore is the PostgreSQL restore drill (issue 23): a PostgreSQL cluster of its
// own, archiving every WAL segment to an encrypted pgBackRest repository, with the platform
// running on it; TestPointInTimeRestore restores it to a named point and checks what the
// platform holds afterwards. The helpers here drive the real tools (initdb, pg_ctl,
// pgbackrest) as the postgres OS user, as an operator does; the machine's own PostgreSQL
// server is not touched.
package restore

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Stanza is the pgBackRest stanza of the drill's cluster.
const Stanza = "drill"

// PG is a PostgreSQL cluster of the drill: its binaries, folder (owned by the postgres OS
// user), port, and the pgBackRest configuration archiving it.
type PG struct {
	Bin  string // /usr/lib/postgresql/<version>/bin
	Dir  string // the drill's folder: data dirs, repository, pgBackRest's lock/log/spool
	Port int
	// Data is the data directory the cluster runs from now (a restore moves it).
	Data string
	// Conf is pgbackrest.conf (mode 0600, owned by postgres): it holds the repository's
	// passphrase, generated for the drill, as a database host's configuration does.
	Conf string
	// ArchiveTimeout is archive_timeout: at most this much committed work waits in a WAL
	// segment not yet archived, which bounds what a crash of the host can lose (RPO).
	ArchiveTimeout string
	uid, gid       int
}

// Tools returns PostgreSQL's bin folder (the newest installed) and pgbackrest's path, or in
// why the reason the drill cannot run here (not root, a tool missing).
func Tools() (bin, pgbackrest, why string) {
	if os.Geteuid() != 0 {
		return "", "", "the drill runs initdb and pgbackrest as the postgres OS user: it needs root"
	}
	if _, err := user.Lookup("postgres"); err != nil {
		return "", "", "no postgres OS user (apt-get install postgresql)"
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return "", "", "no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)"
	}
	sort.Slice(bins, func(i, j int) bool { return version(bins[i]) < version(bins[j]) })
	pgbr, err := exec.LookPath("pgbackrest")
	if err != nil {
		return "", "", "pgbackrest is not installed (apt-get install pgbackrest)"
	}
	return filepath.Dir(bins[len(bins)-1]), pgbr, ""
}

// version is the major version in /usr/lib/postgresql/<v>/bin/initdb.
func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// NewPG initialises a cluster (initdb as postgres) in a new folder with WAL archiving to an
// encrypted pgBackRest repository beside it, starts it on a free loopback port and creates
// the stanza and the database "pms". The folder and the server go when the test ends.
func NewPG(t *testing.T, bin string) *PG {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// Not t.TempDir: the postgres user must reach it, and /tmp/TestX... is root's 0700.
	dir, err := os.MkdirTemp("", "pms-restore-drill-")
	if err != nil {
		t.Fatal(err)
	}
	pg := &PG{Bin: bin, Dir: dir, Data: filepath.Join(dir, "data"), Conf: filepath.Join(dir, "pgbackrest.conf"), ArchiveTimeout: "1s", uid: uid, gid: gid}
	t.Cleanup(func() {
		pg.stop("immediate")
		_ = os.RemoveAll(dir)
	})
	for _, d := range []string{"repo", "log", "lock", "spool"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pass := make([]byte, 32)
	if _, err := rand.Read(pass); err != nil {
		t.Fatal(err)
	}
	// The [global] settings of compose's ops/pgbackrest/pgbackrest.conf (cipher, retention,
	// compression), with the repository, lock, log and spool paths in the drill's folder and
	// the passphrase generated (compose passes it from a secret).
	global, err := composeGlobal()
	if err != nil {
		t.Fatal(err)
	}
	pg.Port = freePort(t)
	conf := fmt.Sprintf(`[global]
%[5]s
repo1-path=%[1]s/repo
repo1-cipher-pass=%[2]s
log-path=%[1]s/log
lock-path=%[1]s/lock
spool-path=%[1]s/spool
log-level-console=warn
log-level-file=off

[%[3]s]
pg1-path=%[1]s/data
pg1-port=%[4]d
pg1-socket-path=%[1]s
`, dir, hex.EncodeToString(pass), Stanza, pg.Port, global)
	if err := os.WriteFile(pg.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}
	pg.run(t, filepath.Join(bin, "initdb"), "-D", pg.Data, "-A", "trust", "-U", "postgres", "--no-sync")
	settings := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 100
wal_level = replica
archive_mode = on
archive_command = '%s'
archive_timeout = %s
fsync = off
`, pg.Port, dir, pg.archiveCommand(), pg.ArchiveTimeout)
	f, err := os.OpenFile(filepath.Join(pg.Data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(settings); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pg.Start(t)
	pg.Backrest(t, "stanza-create")
	pg.PSQL(t, "postgres", "CREATE DATABASE pms")
	return pg
}

// composeGlobal returns the option lines of ops/pgbackrest/pgbackrest.conf's [global] section
// but its paths and log levels; it checks the repository is encrypted there.
func composeGlobal() (string, error) {
	b, err := os.ReadFile(filepath.Join("..", "pgbackrest", "pgbackrest.conf"))
	if err != nil {
		return "", err
	}
	var out []string
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[global]":
			k, _, _ := strings.Cut(line, "=")
			if !strings.HasSuffix(k, "-path") && !strings.HasPrefix(k, "log-level") {
				out = append(out, line)
			}
		}
	}
	if !slices.Contains(out, "repo1-cipher-type=aes-256-cbc") {
		return "", fmt.Errorf("ops/pgbackrest/pgbackrest.conf: the repository is not encrypted (repo1-cipher-type=aes-256-cbc): %q", out)
	}
	return strings.Join(out, "\n"), nil
}

// archiveCommand pushes a WAL segment of the data directory the cluster runs from.
func (pg *PG) archiveCommand() string {
	return fmt.Sprintf("pgbackrest --config=%s --stanza=%s --pg1-path=%s archive-push %%p", pg.Conf, Stanza, pg.Data)
}

// URL is the database URL of "pms" for the platform.
func (pg *PG) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/pms?sslmode=disable", pg.Port)
}

// run runs a command as the postgres OS user and fails the test with its output.
func (pg *PG) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := pg.cmd(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (pg *PG) cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
}

// Start starts the server on pg.Data and waits until it accepts connections.
func (pg *PG) Start(t *testing.T) {
	t.Helper()
	pg.run(t, filepath.Join(pg.Bin, "pg_ctl"), "-D", pg.Data, "-l", filepath.Join(pg.Dir, "log", "postgres.log"), "-w", "-t", "60", "start")
}

// Stop stops the server (fast: sessions are ended, the WAL is flushed and archived).
func (pg *PG) Stop(t *testing.T) {
	t.Helper()
	pg.run(t, filepath.Join(pg.Bin, "pg_ctl"), "-D", pg.Data, "-w", "-t", "60", "-m", "fast", "stop")
}

func (pg *PG) stop(mode string) {
	_ = pg.cmd(filepath.Join(pg.Bin, "pg_ctl"), "-D", pg.Data, "-w", "-m", mode, "stop").Run()
}

// Backrest runs a pgbackrest command on the drill's stanza.
func (pg *PG) Backrest(t *testing.T, args ...string) string {
	t.Helper()
	return pg.run(t, "pgbackrest", append([]string{"--config=" + pg.Conf, "--stanza=" + Stanza}, args...)...)
}

// PSQL runs SQL in database db and returns psql's unaligned, tuples-only output.
func (pg *PG) PSQL(t *testing.T, db, sql string) string {
	t.Helper()
	return strings.TrimSpace(pg.run(t, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", "postgres", "-d", db, "-c", sql))
}

// RestoreTo restores the stopped cluster into a new data directory as it was at the restore
// point named target (recovery then promotion), points archiving at the new directory and
// starts it on the same port, so the platform's database URL is unchanged.
func (pg *PG) RestoreTo(t *testing.T, target string) {
	t.Helper()
	data := filepath.Join(pg.Dir, "data-restored")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, pg.uid, pg.gid); err != nil {
		t.Fatal(err)
	}
	pg.Backrest(t, "--pg1-path="+data, "--type=name", "--target="+target, "--target-action=promote", "restore")
	pg.Data = data
	// The restored postgresql.conf archives as the old directory; the new timeline's WAL
	// goes to the same repository from the new one.
	f, err := os.OpenFile(filepath.Join(data, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(f, "archive_command = '%s'\n", pg.archiveCommand()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pg.Start(t)
}

// freePort is a loopback port free now, picked at random below the kernel's ephemeral range
// (as ops/cluster does): PostgreSQL binds it seconds later, after initdb, and a port handed
// out for :0 could meanwhile be taken by another test's outgoing connection.
func freePort(t *testing.T) int {
	t.Helper()
	for range 1000 {
		port := 32000 + mrand.IntN(700)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		_ = l.Close()
		return port
	}
	t.Fatal("no free loopback port in 32000-32699")
	return 0
}
