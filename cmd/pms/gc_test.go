package main

import (
	"errors"
	"testing"
)

// TestGCDefaults: a service command in a container with a memory limit gets a soft limit of
// 80% of it, unless the operator set GOMEMLIMIT; outside a container, the broker and one-shot
// commands get none.
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
		limit         int64
	}{
		{"service, no container limit", "patient", env(), 0, 0},
		{"pms all in a container", "all", env(), 2 * gib, 2 * gib * 8 / 10},
		{"the gateway in a container, GOGC set", "gateway", env("GOGC", "400"), 2 * gib, 2 * gib * 8 / 10},
		{"the operator's GOMEMLIMIT", "billing", env("GOMEMLIMIT", "1GiB"), 2 * gib, 0},
		{"the embedded broker", "broker", env(), 2 * gib, 0},
		{"a one-shot command", "seed", env(), 2 * gib, 0},
	} {
		if limit := gcDefaults(c.command, c.getenv, c.cgroup); limit != c.limit {
			t.Errorf("%s: limit %d; want %d", c.name, limit, c.limit)
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
