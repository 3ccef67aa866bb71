// Package polltest waits, in tests, for a condition that another goroutine or process brings
// about: it polls with a deadline, so no sleep stands in for synchronisation, and a condition
// that never holds fails the test saying what was awaited rather than hanging it.
package polltest

import (
	"testing"
	"time"
)

// maxInterval caps the pause between two polls: short enough that a test waits little past
// the moment its condition holds, long enough that a cond which queries a database or a
// process does not load it.
const maxInterval = 20 * time.Millisecond

// Until polls cond until it holds and returns how long that took; it fails t when within
// passes first, naming what. The pause between polls starts at a millisecond and doubles up
// to maxInterval, so a condition met at once costs almost nothing.
func Until(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for pause := time.Millisecond; !cond(); pause = min(2*pause, maxInterval) {
		if time.Since(start) > within {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(pause) // the pause between polls of a deadline-bound wait
	}
	return time.Since(start)
}
