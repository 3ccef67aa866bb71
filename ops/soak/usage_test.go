package soak_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the database/sql driver "pgx"
	"github.com/pms/pms/ops/cluster"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on every Linux
// architecture Go runs on here).
const clockTick = 10 * time.Millisecond

// procCPU returns the CPU time (user and system) process pid has used so far, 0 when it is
// gone.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state): utime is field 14, stime 15
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * clockTick
}

// cpuUse is the CPU time used so far by each of the cluster's processes and, under
// "postgres", by every PostgreSQL process on the machine (the soak is its only client; a
// backend that exits takes its time with it, but the services' pools keep theirs open).
func cpuUse(c *cluster.Cluster) map[string]time.Duration {
	m := map[string]time.Duration{}
	for _, name := range cluster.Order {
		if pid := c.Proc(name).Pid(); pid != 0 {
			m[name] = procCPU(pid)
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm")); err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			m["postgres"] += procCPU(pid)
		}
	}
	return m
}

// cpuPerRequest is the CPU time each process used between two cpuUse samples, per request
// answered then: unlike latency, it does not move when other tenants load the machine, so
// it tells a soak that slows down by itself (more work per request) from a busy machine.
func cpuPerRequest(before, after map[string]time.Duration, requests int64) map[string]time.Duration {
	m := map[string]time.Duration{}
	for name, a := range after {
		if requests > 0 && a >= before[name] {
			m[name] = (a - before[name]) / time.Duration(requests)
		}
	}
	return m
}

// dbUse is what the soak's database has written so far: WAL bytes (the server's, but the
// soak is its only writer) and committed transactions.
type dbUse struct {
	wal, commits int64
}

// sampleDB reads dbUse; zero when the database does not answer.
func sampleDB(ctx context.Context, pg *sql.DB) dbUse {
	var u dbUse
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = pg.QueryRowContext(ctx, `SELECT (pg_current_wal_lsn() - '0/0')::bigint,
		(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())`).Scan(&u.wal, &u.commits)
	return u
}
