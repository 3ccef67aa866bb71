package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// serviceGCPercent is the collector's target for a service process when GOGC is unset: a
// heap may grow to five times what is live before the next cycle, instead of Go's twice.
// A read allocates about 21 KB that dies with it, so at 100 the collector took 10–15% of a
// service's CPU under concurrent reads (issue 20's notes give the measurements). A
// service's live heap is a few MB (heap profiles of the 30-minute soak), so the price is
// tens of MB of RSS, and memoryLimitShare bounds it in a container.
const serviceGCPercent = 400

// memoryLimitShare is the part of the container's memory limit (cgroup) the Go heap is held
// to by default: the collector works harder as the heap nears it instead of the container
// being killed, with room left for stacks, buffers and the runtime's own.
const memoryLimitShare = 0.8

// gcServices are the commands that run a long-lived service under load, which the GC
// defaults are for. The embedded broker (pms broker) keeps every record it retains on its
// heap and is left at Go's defaults, so its memory tracks its data as before; one-shot
// commands do not run long enough to matter.
var gcServices = map[string]bool{"all": true, "patient": true, "billing": true, "auth": true, "analytics": true, "gateway": true}

// gcDefaults decides the collector settings of a command: GOGC serviceGCPercent and, in a
// container with a memory limit, a soft limit of memoryLimitShare of it, each only where
// the operator has not set GOGC or GOMEMLIMIT (which always win, as Go reads them itself).
// percent 0 or limit 0 leaves that setting alone.
func gcDefaults(command string, getenv func(string) string, cgroupLimit int64) (percent int, limit int64) {
	if !gcServices[command] {
		return 0, 0
	}
	if getenv("GOGC") == "" {
		percent = serviceGCPercent
	}
	if getenv("GOMEMLIMIT") == "" && cgroupLimit > 0 {
		limit = int64(float64(cgroupLimit) * memoryLimitShare)
	}
	return percent, limit
}

// applyGCDefaults sets what gcDefaults decides for the command about to run.
func applyGCDefaults(args []string) {
	if len(args) == 0 {
		return
	}
	percent, limit := gcDefaults(args[0], os.Getenv, cgroupMemoryLimit(os.ReadFile))
	if percent > 0 {
		debug.SetGCPercent(percent)
	}
	if limit > 0 {
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
