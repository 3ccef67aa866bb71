package db_test

import (
	"fmt"
	"hash/fnv"
	"testing"

	"github.com/pms/pms/pkg/platform/db"
)

// TestLockKeyKeepsEarlierKeys: the audit writer and the outbox relay derived their advisory
// lock keys by hand before LockKey; a process of this release and one of the release before
// it, side by side during an upgrade, must still take the same lock.
func TestLockKeyKeepsEarlierKeys(t *testing.T) {
	old := func(format string, args ...any) int64 {
		h := fnv.New64a()
		fmt.Fprintf(h, format, args...)
		return int64(h.Sum64())
	}
	if got, want := db.LockKey("pms/audit", "patient", "audit_log"), old("pms/audit\x00%s\x00%s", "patient", "audit_log"); got != want {
		t.Errorf("audit key %d, before %d", got, want)
	}
	if got, want := db.LockKey("pms/outbox-relay", "billing"), old("pms/outbox-relay\x00%s", "billing"); got != want {
		t.Errorf("relay key %d, before %d", got, want)
	}
	if db.LockKey("pms/migrate", "a", "b") == db.LockKey("pms/migrate", "a", "") || db.LockKey("pms/migrate", "ab", "") == db.LockKey("pms/migrate", "a", "b") {
		t.Error("different names share a key")
	}
}
