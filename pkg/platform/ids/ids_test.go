package ids

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestOrderedIsVersion7AndRises: the ids parse as canonical version 7 UUIDs and sort in the
// order they were made (as text, the way the indexes compare them).
func TestOrderedIsVersion7AndRises(t *testing.T) {
	prev := ""
	for i := 0; i < 10000; i++ {
		s := Ordered()
		u, err := uuid.Parse(s)
		if err != nil || u.Version() != 7 || u.String() != s {
			t.Fatalf("Ordered() = %q: version %d, err %v", s, u.Version(), err)
		}
		if s <= prev {
			t.Fatalf("id %d %q does not sort after %q", i, s, prev)
		}
		prev = s
	}
}

// TestFloorAndAt: an id made at t sorts at or above Floor(t) and below Floor(t + 1ms), At
// reads t back, and At refuses what is not an ordered id.
func TestFloorAndAt(t *testing.T) {
	for _, at := range []time.Time{time.Now(), time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC), time.UnixMilli(1)} {
		at = at.Truncate(time.Millisecond)
		id := OrderedAt(at)
		if id < Floor(at) || id >= Floor(at.Add(time.Millisecond)) || Floor(at.Add(-time.Millisecond)) >= Floor(at) {
			t.Fatalf("OrderedAt(%v) = %q: not in [%q, %q)", at, id, Floor(at), Floor(at.Add(time.Millisecond)))
		}
		if got, ok := At(id); !ok || !got.Equal(at) {
			t.Fatalf("At(%q) = %v, %v; want %v", id, got, ok, at)
		}
		if _, err := uuid.Parse(Floor(at)); err != nil {
			t.Fatalf("Floor(%v) = %q is not a UUID: %v", at, Floor(at), err)
		}
	}
	if got, ok := At(Ordered()); !ok || time.Since(got) > time.Minute || time.Until(got) > time.Minute {
		t.Fatalf("At(Ordered()) = %v, %v; want about now", got, ok)
	}
	for _, s := range []string{uuid.NewString(), "not-a-uuid", "", "0190aaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"} {
		if _, ok := At(s); ok {
			t.Fatalf("At(%q) accepted a non-ordered id", s)
		}
	}
}
