package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
)

// DefaultTable is the table every service keeps its audit log in.
const DefaultTable = "audit_log"

// genesisHash is the prev_hash of the first row: 64 zeros, the width of a hex SHA-256, so the
// first row is hashed exactly like every other.
var genesisHash = strings.Repeat("0", sha256.Size*2)

// columns lists the audit_log columns in the order every statement of this package uses.
const columns = "seq, id, at, actor, role, action, subject_id, outcome, request_id, client_address, prev_hash, hash"

// numColumns is the number of bind parameters one row needs in an INSERT.
const numColumns = 12

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// checkTable returns table, or DefaultTable when it is empty, and refuses anything that is not
// a plain lower-case identifier: the name is spliced into SQL, so it must never carry syntax.
// mustBeColumns panics on a name in cols that is not a plain identifier: extra column names
// are spliced into statements, and a bad one is a wiring mistake caught at start-up.
func mustBeColumns(cols []string) {
	for _, c := range cols {
		if !tableName.MatchString(c) {
			panic(errs.Newf(errs.Internal, "audit: invalid extra column name %q", c))
		}
	}
}

func checkTable(table string) (string, error) {
	if table == "" {
		return DefaultTable, nil
	}
	if !tableName.MatchString(table) {
		return "", errs.Newf(errs.Internal, "audit: invalid table name %q", table)
	}
	return table, nil
}

// canonicalTime is how At enters the hash: UTC, microseconds (what both dialects store), in
// RFC 3339. Going through time.Time rather than the stored text makes the hash independent of
// how a dialect prints instants.
func canonicalTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

// chainHash returns hex(sha256(prevHash || encoding of e)), where the encoding writes seq, id,
// at, actor, role, action, subject_id, outcome, request_id and client_address, each as an
// 8-byte big-endian length followed by its bytes. Length prefixes make the encoding
// unambiguous: moving characters from one field into its neighbour changes the hash.
func chainHash(prevHash string, e *Entry) string {
	h := sha256.New()
	h.Write([]byte(prevHash))
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(strconv.FormatInt(e.Seq, 10))
	field(e.ID)
	field(canonicalTime(e.At))
	field(e.Actor)
	field(e.Role)
	field(e.Action)
	field(e.SubjectID)
	field(e.Outcome)
	field(e.RequestID)
	field(e.ClientAddress)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// lockKey is the PostgreSQL advisory-lock key for one audit table: derived from schema and
// table so every process writing that table takes the same lock, and writers of other
// tables or schemas in the same database never wait for each other.
func lockKey(schema, table string) int64 { return db.LockKey("pms/audit", schema, table) }

// validate refuses text PostgreSQL cannot store (invalid UTF-8, NUL bytes) before the entry
// joins a batch: one bad entry would otherwise fail the whole batch and every request in it.
func validate(e *Entry) error {
	var f errs.Fields
	for _, c := range []struct{ name, v string }{
		{"id", e.ID}, {"actor", e.Actor}, {"role", e.Role}, {"action", e.Action},
		{"subjectId", e.SubjectID}, {"outcome", e.Outcome}, {"requestId", e.RequestID},
		{"clientAddress", e.ClientAddress},
	} {
		if !utf8.ValidString(c.v) || strings.IndexByte(c.v, 0) >= 0 {
			f.Add(c.name, "must be valid UTF-8 without NUL characters")
		}
	}
	if e.Action == "" {
		f.Add("action", "is required")
	}
	return f.Err()
}
