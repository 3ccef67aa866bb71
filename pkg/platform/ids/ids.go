// Package ids makes the ids of rows that are only ever appended: audit entries and events.
package ids

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Ordered returns a new time-ordered UUID (version 7, RFC 9562: 48 bits of Unix
// milliseconds, then random bits; ids made in one process also rise within a millisecond).
// A random (version 4) id lands anywhere in a B-tree: on a large audit log every append
// dirties another leaf page of the log's unique index and of each consumer's dedupe index
// (processed_events), and the first change to a page after a checkpoint writes the whole
// page to PostgreSQL's write-ahead log. Ordered ids land at the index's right edge, on a
// page already in memory. Use it for audit entries and event ids only: the id tells when
// it was made, which those rows state anyway; records a user sees (patients, invoices)
// keep random ids.
// It panics only when the system's random source fails, as uuid.NewString does.
func Ordered() string { return uuid.Must(uuid.NewV7()).String() }

// Floor returns the smallest ordered id of t's millisecond: every id Ordered made before
// that millisecond sorts below it, as text and as a uuid. A table keyed by ordered ids finds
// its rows older than t with a range scan of that key, no index on a time column needed.
func Floor(t time.Time) string {
	ms := uint64(max(t.UnixMilli(), 0)) & (1<<48 - 1)
	return fmt.Sprintf("%08x-%04x-7000-8000-000000000000", ms>>16, ms&0xffff)
}

// At returns when ordered id s was made (to the millisecond), and false for anything that is
// not a version 7 UUID (a random id, or one a client chose).
func At(s string) (time.Time, bool) {
	u, err := uuid.Parse(s)
	if err != nil || u.Version() != 7 {
		return time.Time{}, false
	}
	ms := int64(u[0])<<40 | int64(u[1])<<32 | int64(u[2])<<24 | int64(u[3])<<16 | int64(u[4])<<8 | int64(u[5])
	return time.UnixMilli(ms), true
}

// OrderedAt is Ordered as if made at t (its random bits are fresh): for tests, and for rows
// written on behalf of an earlier instant.
func OrderedAt(t time.Time) string {
	return Floor(t)[:14] + Ordered()[14:]
}
