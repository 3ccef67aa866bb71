package polltest_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"
)

// TestUntil: Until returns once the condition holds (set by another goroutine), polling it
// more than once, and fails the test naming what it waited for when the condition never holds.
func TestUntil(t *testing.T) {
	var ready atomic.Bool
	var polls atomic.Int64
	go func() {
		for polls.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
		ready.Store(true)
	}()
	polltest.Until(t, 10*time.Second, "the flag", func() bool { polls.Add(1); return ready.Load() })
	if polls.Load() < 3 {
		t.Fatalf("returned after %d polls", polls.Load())
	}

	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		polltest.Until(r, 10*time.Millisecond, "nothing", func() bool { return false })
	}()
	<-done
	if r.failed != "timed out after 10ms waiting for nothing" {
		t.Fatalf("failure %q", r.failed)
	}
}

// recorder is a testing.TB whose Fatalf records the message and ends the goroutine, as
// testing's does, without failing the test around it.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
