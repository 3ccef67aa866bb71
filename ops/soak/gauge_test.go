package soak_test

import (
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pms/pms/pkg/platform/polltest"
)

// The machine's speed gauge (issue 20 item 7). On a shared 2-core machine the CPU time a
// fixed piece of work takes moves within a run (another tenant on the same host, the host's
// clock, time the hypervisor takes that this guest cannot see: /proc/stat's steal column
// stays 0 here), and every process's CPU a request moves with it, auth's included, whose
// work a request does not change with the data. The gauge times the same work again and
// again in the CPU time of its own thread, which waiting for a CPU does not count, so the
// soak's requests queueing do not move it. What does move it: a slower host, and the other
// processes' traffic through the shared caches and memory. Measured on one machine, idle
// against beside three soaks (0.25 and 0.35 of the peak): compute 1.26 against 1.30-1.53 ms,
// memory 8.5 against 10.2-13.8 ms. It is the same canary as auth's CPU a request, one with no
// PMS code in it: a CPU a request that grows with the gauge is the machine's doing. One that
// grows beyond it is a process doing more a request, or a cost the compute and memory halves
// do not exercise: in one soak every process's CPU a request, auth's included, stepped up
// together with both flat (docs/kafka.md, twenty-ninth session). So the gauge has a third
// half, the wakeup: system calls and a thread woken through the kernel, what a service does
// around every message it sends or receives, and what costs a virtual machine more when its
// host is busy (a wakeup across CPUs is an interrupt the hypervisor delivers).
const (
	gaugePeriod = 5 * time.Second
	// gaugeHashes of a gaugeBlock each: a few milliseconds of compute that stays in the
	// core's own caches.
	gaugeHashes = 128
	gaugeBlock  = 16 << 10
	// gaugeSlots of 4 bytes (16 MiB, more than a shared last-level cache) walked in one
	// random cycle for gaugeSteps: each step a cache miss, so the figure moves when other
	// processes on the host take the shared cache or the memory bus.
	gaugeSlots = 4 << 20
	gaugeSteps = 50_000
	// gaugeRoundTrips of one byte each way between two threads over two pipes: a write that
	// wakes the partner and a read that sleeps until it answers, each round trip.
	gaugeRoundTrips = 1000
)

// gaugeReading is one figure of each half: the CPU time its fixed work took.
type gaugeReading struct {
	compute, memory, wakeup time.Duration
}

// gauge samples gaugeWork every period until its context ends; take hands out the medians
// of the samples since the last take.
type gauge struct {
	mu                      sync.Mutex
	compute, memory, wakeup []time.Duration
	work                    *gaugeWork
}

// gaugeWork is the fixed work: a block to hash and a cycle to walk.
type gaugeWork struct {
	block []byte
	next  []uint32
	at    uint32 // where the walk stopped, so that every sample goes on along the cycle
}

// newGaugeWork builds the work: next links every slot to the one after it in a random
// order, one cycle through all of them that no prefetcher can follow.
func newGaugeWork(slots int) *gaugeWork {
	rng := rand.New(rand.NewPCG(20, 7))
	w := &gaugeWork{block: make([]byte, gaugeBlock), next: make([]uint32, slots)}
	for i := range w.block {
		w.block[i] = byte(rng.Uint32())
	}
	order := make([]uint32, slots)
	for i := range order {
		order[i] = uint32(i)
	}
	rng.Shuffle(slots, func(i, j int) { order[i], order[j] = order[j], order[i] })
	for i := range slots {
		w.next[order[i]] = order[(i+1)%slots]
	}
	return w
}

// threadCPU is the CPU time of the calling OS thread so far.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// measure runs the work once on a locked thread and returns the thread's CPU time for each
// half (0 where the clock could not be read).
func (w *gaugeWork) measure(steps int) (compute, memory time.Duration) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := threadCPU()
	var sum [sha256.Size]byte
	for range gaugeHashes {
		sum = sha256.Sum256(w.block)
		w.block[0] ^= sum[0]
	}
	t1 := threadCPU()
	at := w.at
	for range steps {
		at = w.next[at]
	}
	w.at = at
	t2 := threadCPU()
	if t0 == 0 || t1 == 0 || t2 == 0 {
		return 0, 0
	}
	return t1 - t0, t2 - t1
}

// pingPong makes n round trips between the calling thread and a partner thread over two
// pipes and returns the calling thread's CPU time for them (0 when the pipes or the clock
// failed): the system calls, the partner's wakeup and this thread's own sleep and wakeup.
func pingPong(n int) time.Duration {
	var ping, pong [2]int
	if err := unix.Pipe2(ping[:], unix.O_CLOEXEC); err != nil {
		return 0
	}
	defer unix.Close(ping[0])
	if err := unix.Pipe2(pong[:], unix.O_CLOEXEC); err != nil {
		unix.Close(ping[1])
		return 0
	}
	defer unix.Close(pong[0])
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer unix.Close(pong[1])
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		b := make([]byte, 1)
		for {
			if k, _ := unix.Read(ping[0], b); k != 1 {
				return // the pinger closed its end
			}
			if k, _ := unix.Write(pong[1], b); k != 1 {
				return
			}
		}
	}()
	runtime.LockOSThread()
	b := []byte{1}
	t0 := threadCPU()
	ok := true
	for range n {
		if k, _ := unix.Write(ping[1], b); k != 1 {
			ok = false
			break
		}
		if k, _ := unix.Read(pong[0], b); k != 1 {
			ok = false
			break
		}
	}
	t1 := threadCPU()
	runtime.UnlockOSThread()
	unix.Close(ping[1])
	<-done
	if !ok || t0 == 0 || t1 == 0 {
		return 0
	}
	return t1 - t0
}

// startGauge runs the gauge until ctx ends.
func startGauge(ctx context.Context, period time.Duration) *gauge {
	g := &gauge{work: newGaugeWork(gaugeSlots)}
	go every(ctx, period, func() {
		c, m := g.work.measure(gaugeSteps)
		w := pingPong(gaugeRoundTrips)
		if c <= 0 || m <= 0 || w <= 0 {
			return
		}
		g.mu.Lock()
		g.compute = append(g.compute, c)
		g.memory = append(g.memory, m)
		g.wakeup = append(g.wakeup, w)
		g.mu.Unlock()
	})
	return g
}

// every calls f every period until ctx ends.
func every(ctx context.Context, period time.Duration, f func()) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f()
		}
	}
}

// take returns the median of each half's samples since the last take (the lower middle of an
// even count), 0 when there were none.
func (g *gauge) take() gaugeReading {
	g.mu.Lock()
	c, m, w := g.compute, g.memory, g.wakeup
	g.compute, g.memory, g.wakeup = nil, nil, nil
	g.mu.Unlock()
	return medianReading(c, m, w)
}

// medianReading is the median of each half's samples (percentile's nearest rank), 0 for a
// half without any: an interval's figure from its samples, and a window's from its intervals.
func medianReading(compute, memory, wakeup []time.Duration) gaugeReading {
	return gaugeReading{compute: percentile(compute, 0.5), memory: percentile(memory, 0.5), wakeup: percentile(wakeup, 0.5)}
}

// TestGaugeWalksOneCycle checks what makes the memory half a fixed piece of work: the walk
// is one cycle through every slot, so it never settles into a short loop that the caches
// would hold, and the thread clock the gauge reads moves.
func TestGaugeWalksOneCycle(t *testing.T) {
	const slots = 1 << 12
	w := newGaugeWork(slots)
	seen := make([]bool, slots)
	at := uint32(0)
	for i := range slots {
		if seen[at] {
			t.Fatalf("slot %d visited twice after %d steps: the walk is not one cycle", at, i)
		}
		seen[at] = true
		at = w.next[at]
	}
	if at != 0 {
		t.Fatalf("after %d steps the walk is at %d, not back at 0", slots, at)
	}
	if c, m := w.measure(slots); c <= 0 || m <= 0 {
		t.Fatalf("the thread's CPU clock did not move: compute %v, memory %v", c, m)
	}
	if w.at != 0 {
		t.Fatalf("a whole cycle of steps ended at %d, not where it began", w.at)
	}
}

// TestGaugePingPongs checks the wakeup half: its round trips complete, its partner thread
// ends with it (no goroutine or descriptor left behind each sample), and its figure grows
// with the round trips it makes, so it measures them and not a fixed overhead.
func TestGaugePingPongs(t *testing.T) {
	before := runtime.NumGoroutine()
	one := pingPong(100)
	many := pingPong(2000)
	if one <= 0 || many <= 0 {
		t.Fatalf("ping-pong: %v for 100 round trips, %v for 2000", one, many)
	}
	if many < 4*one {
		t.Errorf("2000 round trips took %v of CPU, 100 took %v: not the round trips being measured", many, one)
	}
	// The partner has closed done when pingPong returns; it may still be on its way out.
	polltest.Until(t, 5*time.Second, "the ping-pong's partner goroutine to end", func() bool {
		return runtime.NumGoroutine() <= before
	})
}
