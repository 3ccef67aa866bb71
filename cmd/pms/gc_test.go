package main

import (
	"errors"
	"testing"
)

// TestGCDefaults: a service command gets GOGC 400 and, under a cgroup memory limit, a soft
// limit of 80% of it; whatever the operator set in GOGC or GOMEMLIMIT is left to Go; the
// broker and one-shot commands keep Go's defaults.
func TestGCDefaults(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	const gib = 1 << 30
	for _, c := range []struct {
		name, command string
		getenv        func(string) string
		cgroup        int64
		percent       int
		limit         int64
	}{
		{"service, no container limit", "patient", env(), 0, 400, 0},
		{"pms all in a container", "all", env(), 2 * gib, 400, 2 * gib * 8 / 10},
		{"the operator's GOGC", "gateway", env("GOGC", "150"), 2 * gib, 0, 2 * gib * 8 / 10},
		{"the operator's GOMEMLIMIT", "billing", env("GOMEMLIMIT", "1GiB"), 2 * gib, 400, 0},
		{"GOGC=off is the operator's too", "auth", env("GOGC", "off"), 0, 0, 0},
		{"the embedded broker", "broker", env(), 2 * gib, 0, 0},
		{"a one-shot command", "seed", env(), 2 * gib, 0, 0},
	} {
		percent, limit := gcDefaults(c.command, c.getenv, c.cgroup)
		if percent != c.percent || limit != c.limit {
			t.Errorf("%s: percent %d, limit %d; want %d, %d", c.name, percent, limit, c.percent, c.limit)
		}
	}
}

// TestCgroupMemoryLimit reads cgroup v2 first, then v1, and takes "max", v1's near-int64
// "unlimited", garbage and a missing file as no limit.
func TestCgroupMemoryLimit(t *testing.T) {
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if v, ok := m[p]; ok {
				return []byte(v), nil
			}
			return nil, errors.New("no such file")
		}
	}
	const v2, v1 = "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
	for _, c := range []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"v2 limit", map[string]string{v2: "536870912\n"}, 536870912},
		{"v2 max", map[string]string{v2: "max\n", v1: "536870912\n"}, 0},
		{"v1 limit", map[string]string{v1: "1073741824\n"}, 1073741824},
		{"v1 unlimited", map[string]string{v1: "9223372036854771712\n"}, 0},
		{"garbage", map[string]string{v2: "lots"}, 0},
		{"no cgroup files", nil, 0},
	} {
		if got := cgroupMemoryLimit(files(c.files)); got != c.want {
			t.Errorf("%s: %d; want %d", c.name, got, c.want)
		}
	}
}
