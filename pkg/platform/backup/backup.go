// Package backup takes and restores the embedded default's backups (docs/operations.md): an
// online snapshot of each service's SQLite database (VACUUM INTO, which reads one consistent
// state while writers go on in WAL mode), the key files the platform needs, and a manifest
// (release, schema versions, per-table row counts, audit chain heads, a SHA-256 of every
// member), in a tar, gzipped, encrypted with age to an X25519 recipient. The running platform
// holds only the recipient: the identity that decrypts lives elsewhere.
//
// Extract decrypts, checks every member against the manifest and every database against its
// own entry (integrity, schema not newer than this release knows, row counts, audit chain);
// Swap puts the checked files in place by renames, beside a journal, so an interrupted swap
// is finished or undone by running the restore again and never leaves a mixture.
package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"time"

	"filippo.io/age"
	"github.com/pms/pms/pkg/platform/db"
)

// Format is the version of the archive layout this package writes and reads.
const Format = 1

// ManifestName is the archive's first member.
const ManifestName = "manifest.json"

// Manifest describes a backup; it travels inside the encrypted archive, so it may name
// tables but holds no record.
type Manifest struct {
	Format    int        `json:"format"`
	Release   string     `json:"release"`
	CreatedAt time.Time  `json:"createdAt"`
	Databases []Database `json:"databases"`
	Files     []File     `json:"files"`
}

// Database is one service's database in a backup.
type Database struct {
	Service string `json:"service"`
	// File is the member holding it.
	File string `json:"file"`
	// SnapshotAt is when its snapshot began: what the service committed later is not in it.
	SnapshotAt time.Time `json:"snapshotAt"`
	// Schema is each migration set's applied version, by its version table.
	Schema map[string]int64 `json:"schemaVersions"`
	// Rows counts each table's rows.
	Rows map[string]int64 `json:"rows"`
	// AuditHead is the last entry of the audit chain (nil when the log is empty).
	AuditHead *Head `json:"auditHead,omitempty"`
	// Sequences are the AUTOINCREMENT counters (sqlite_sequence) by table.
	Sequences map[string]int64 `json:"sequences,omitempty"`
}

// Head is an audit chain's last entry.
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// File is one member: its name (a slash path relative to the data folder), size and SHA-256.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Release names the build taking a backup: its module version and VCS revision when known.
func Release() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	r := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			r += " " + s.Value
		}
	}
	return r
}

// Describe adds to m the member name, read from dir, with its size and checksum.
func (m *Manifest) Describe(dir, name string) error {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	m.Files = append(m.Files, File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// Write writes the archive of m's files, read from dir, encrypted to to.
func Write(w io.Writer, to age.Recipient, m Manifest, dir string) error {
	ew, err := age.Encrypt(w, to)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(ew)
	tw := tar.NewWriter(zw)
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: ManifestName, Mode: 0o600, Size: int64(len(mb)), ModTime: m.CreatedAt, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(mb); err != nil {
		return err
	}
	for _, f := range m.Files {
		if err := writeMember(tw, dir, f, m.CreatedAt); err != nil {
			return err
		}
	}
	for _, c := range []io.Closer{tw, zw, ew} {
		if err := c.Close(); err != nil {
			return err
		}
	}
	return nil
}

func writeMember(tw *tar.Writer, dir string, f File, at time.Time) error {
	src, err := os.Open(filepath.Join(dir, filepath.FromSlash(f.Name)))
	if err != nil {
		return err
	}
	defer src.Close()
	if err := tw.WriteHeader(&tar.Header{Name: f.Name, Mode: 0o600, Size: f.Size, ModTime: at, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	// A member that changed size since it was described fails here (tar refuses a short or
	// long write), never goes into the archive with a wrong checksum.
	if _, err := io.CopyN(tw, src, f.Size); err != nil {
		return fmt.Errorf("backup: %s: %w", f.Name, err)
	}
	return nil
}

// ErrDecrypt is a backup that the identity cannot open: another key, or not an age file.
var ErrDecrypt = errors.New("backup: cannot decrypt (wrong identity, or not a pms backup)")

// ErrCorrupt is a backup whose content fails a check: truncated, altered, or inconsistent
// with its manifest.
var ErrCorrupt = errors.New("backup: the file is damaged")

// maxManifest bounds the manifest member.
const maxManifest = 1 << 20

// Extract decrypts the archive read from r with id into dir (which must exist and be empty)
// and checks every member's size and checksum against the manifest, and that the archive
// ends where age says it ends (a truncated file fails). dir's content is only to be used when
// Extract returns nil.
func Extract(r io.Reader, id age.Identity, dir string) (Manifest, error) {
	dr, err := age.Decrypt(r, id)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return Manifest{}, fmt.Errorf("%w: no identity matched the file's recipient", ErrDecrypt)
		}
		return Manifest{}, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	zr, err := gzip.NewReader(dr)
	if err != nil {
		return Manifest{}, corrupt(err)
	}
	tr := tar.NewReader(zr)
	hdr, err := tr.Next()
	if err != nil {
		return Manifest{}, corrupt(err)
	}
	if hdr.Name != ManifestName || hdr.Size > maxManifest {
		return Manifest{}, corrupt(errors.New("the first member is not the manifest"))
	}
	var m Manifest
	if err := json.NewDecoder(io.LimitReader(tr, maxManifest)).Decode(&m); err != nil {
		return Manifest{}, corrupt(fmt.Errorf("manifest: %v", err))
	}
	if m.Format != Format {
		return Manifest{}, fmt.Errorf("backup: format %d, this release reads format %d", m.Format, Format)
	}
	want := map[string]File{}
	for _, f := range m.Files {
		if !localName(f.Name) {
			return Manifest{}, corrupt(fmt.Errorf("member name %q", f.Name))
		}
		want[f.Name] = f
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Manifest{}, corrupt(err)
		}
		f, ok := want[hdr.Name]
		if !ok || hdr.Typeflag != tar.TypeReg || hdr.Size != f.Size {
			return Manifest{}, corrupt(fmt.Errorf("member %q is not in the manifest as it is", hdr.Name))
		}
		delete(want, hdr.Name)
		if err := extractMember(tr, dir, f); err != nil {
			return Manifest{}, err
		}
	}
	if len(want) > 0 {
		return Manifest{}, corrupt(fmt.Errorf("%d members of the manifest are missing", len(want)))
	}
	// Read to the end: gzip checks its CRC there, age its final chunk, so a file cut after
	// the tar's end still fails.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return Manifest{}, corrupt(err)
	}
	if _, err := io.Copy(io.Discard, dr); err != nil {
		return Manifest{}, corrupt(err)
	}
	return m, nil
}

func extractMember(tr io.Reader, dir string, f File) error {
	p := filepath.Join(dir, filepath.FromSlash(f.Name))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.CopyN(io.MultiWriter(out, h), tr, f.Size)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return corrupt(fmt.Errorf("%s: %v", f.Name, err))
	}
	if hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return corrupt(fmt.Errorf("%s: checksum does not match the manifest", f.Name))
	}
	return nil
}

// localName accepts a slash path inside the data folder: no absolute path, no "..", no
// empty or dot element, nothing hidden at the top (the lock, the journal).
func localName(name string) bool {
	return name != "" && name == path.Clean(name) && filepath.IsLocal(filepath.FromSlash(name)) && name[0] != '.' && name != ManifestName
}

func corrupt(err error) error { return fmt.Errorf("%w: %v", ErrCorrupt, err) }

// Snapshot copies the SQLite database at src into dst (which must not exist) while writers
// go on: VACUUM INTO reads one consistent state in a read transaction, which in WAL mode
// blocks no writer, and writes a compact copy without its WAL.
func Snapshot(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	d, err := db.Open(ctx, "sqlite://"+src, "")
	if err != nil {
		return err
	}
	defer d.Close()
	if _, err := d.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("backup: snapshot of %s: %w", filepath.Base(src), err)
	}
	return nil
}
