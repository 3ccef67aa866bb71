package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimitShare is the part of the container's memory limit (cgroup) the Go heap is held
// to by default: the collector works harder as the heap nears it instead of the container
// being killed, with room left for stacks, buffers and the runtime's own.
const memoryLimitShare = 0.8

// gcServices are the commands that run a long-lived service under load, which the GC
// defaults are for. The embedded broker (pms broker) keeps every record it retains on its
// heap and is left at Go's defaults, so its memory tracks its data as before; one-shot
// commands do not run long enough to matter.
//
// The collector's target stays Go's own (GOGC 100) unless GOGC is set. The twenty-fifth
// session made it 400 for these commands: under wrk's saturating reads it saved 10-20% of a
// service's CPU. The 30-minute soak (item 7 of issue 20: the platform at a steady load) did
// not bear it out: at 400, p99 rose over the run in both soaks (1.2-1.6x and 1.8-2.3x,
// 5-minute windows) and the gateway's RSS grew 13.6% in one, where at 100 it stayed within
// 0.5-1.5x in all four; the heap at 400 is 15-25 MiB larger a service (docs/operations.md).
// An operator who wants the throughput sets GOGC=400.
var gcServices = map[string]bool{"all": true, "patient": true, "billing": true, "auth": true, "analytics": true, "gateway": true}

// gcDefaults decides the soft memory limit of a command: in a container with a memory
// limit, memoryLimitShare of it, unless the operator has set GOMEMLIMIT (which always wins,
// as Go reads it itself); 0 leaves the limit alone.
func gcDefaults(command string, getenv func(string) string, cgroupLimit int64) (limit int64) {
	if !gcServices[command] || getenv("GOMEMLIMIT") != "" || cgroupLimit <= 0 {
		return 0
	}
	return int64(float64(cgroupLimit) * memoryLimitShare)
}

// applyGCDefaults sets what gcDefaults decides for the command about to run.
func applyGCDefaults(args []string) {
	if len(args) == 0 {
		return
	}
	if limit := gcDefaults(args[0], os.Getenv, cgroupMemoryLimit(os.ReadFile)); limit > 0 {
		debug.SetMemoryLimit(limit)
	}
}

// cgroupMemoryLimit is the memory limit of this process's cgroup in bytes (cgroup v2's
// memory.max, else v1's memory.limit_in_bytes), 0 when there is none: "max", a v1 value near
// the largest int64 (v1's "unlimited"), or no cgroup file at all.
func cgroupMemoryLimit(read func(string) ([]byte, error)) int64 {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := read(path)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0
		}
		return n
	}
	return 0
}
