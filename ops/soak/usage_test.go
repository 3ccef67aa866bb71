package soak_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the database/sql driver "pgx"
	"github.com/pms/pms/ops/cluster"
	"github.com/pms/pms/pkg/platform/db/dbtest"
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

// schedUse is what the scheduler has counted so far for a process's threads
// (/proc/<pid>/task/*/schedstat): the time they waited on a run queue for a CPU, and how
// many times one was put on a CPU (a timeslice each: after a wakeup or a preemption).
type schedUse struct {
	wait   time.Duration
	slices int64
}

// procSched sums schedUse over process pid's threads; zero when it is gone or the kernel
// keeps no schedstat. A thread that exits takes its counts with it: the services' runtimes
// keep theirs, and PostgreSQL's processes have one each.
func procSched(pid int) schedUse {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return schedUse{}
	}
	var u schedUse
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "schedstat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b)) // time on a CPU, time waiting for one (ns), timeslices
		if len(f) < 3 {
			continue
		}
		wait, _ := strconv.ParseInt(f[1], 10, 64)
		slices, _ := strconv.ParseInt(f[2], 10, 64)
		u.wait += time.Duration(wait)
		u.slices += slices
	}
	return u
}

// cpuSample is the CPU time used so far by each of the cluster's processes, and by each
// PostgreSQL process on the machine (the soak is its only client), by pid: a backend that
// exits between two samples takes its time with it, so the sum over the processes alone
// would drop, and a new one counts from its start.
type cpuSample struct {
	procs map[string]time.Duration
	pg    map[int]time.Duration
	// sched and pgSched are the same processes' schedUse: a CPU a request that grows with
	// the wakeups a request is a process doing more rounds of work (smaller batches, more
	// polls); one that grows with them flat is each round costing more.
	sched   map[string]schedUse
	pgSched map[int]schedUse
	// switches is the machine's context switches so far (/proc/stat's ctxt).
	switches uint64
	// busy and total are the machine's CPU ticks so far, all of them and the ones not idle
	// (/proc/stat): the share of the machine the run keeps busy, which says whether its
	// latency is the platform's or the queue of a saturated machine.
	busy, total uint64
}

// cpuUse takes a cpuSample.
func cpuUse(c *cluster.Cluster) cpuSample {
	s := cpuSample{procs: map[string]time.Duration{}, pg: map[int]time.Duration{}, sched: map[string]schedUse{}, pgSched: map[int]schedUse{}}
	for _, name := range cluster.Order {
		if pid := c.Proc(name).Pid(); pid != 0 {
			s.procs[name] = procCPU(pid)
			s.sched[name] = procSched(pid)
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm")); err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			s.pg[pid] = procCPU(pid)
			s.pgSched[pid] = procSched(pid)
		}
	}
	s.busy, s.total, s.switches = machineTicks()
	return s
}

// machineTicks reads the machine's CPU ticks from /proc/stat's first line: all of them, and
// those not idle or waiting for I/O, and the context switches so far (its ctxt line). Zero
// when it cannot be read.
func machineTicks() (busy, total, switches uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	if _, rest, ok := strings.Cut(string(b), "\nctxt "); ok {
		line, _, _ := strings.Cut(rest, "\n")
		switches, _ = strconv.ParseUint(strings.TrimSpace(line), 10, 64)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, switches
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, switches
}

// machineBusy is the share of the machine's CPU time busy between two samples, in percent;
// -1 when unknown.
func machineBusy(before, after cpuSample) float64 {
	if after.total <= before.total || after.busy < before.busy {
		return -1
	}
	return 100 * float64(after.busy-before.busy) / float64(after.total-before.total)
}

// cpuPerRequest is the CPU time each process (cpuNames; "postgres" for all of PostgreSQL's)
// used between two samples, per request answered then. It moves far less than latency when
// the machine is busy, but it does move: a busier machine makes each wakeup and cache miss
// dearer (the thirtieth session's soaks; read it beside schedPerRequest and the gauge).
func cpuPerRequest(before, after cpuSample, requests int64) map[string]time.Duration {
	m := map[string]time.Duration{}
	if requests <= 0 {
		return m
	}
	for name, a := range after.procs {
		if a >= before.procs[name] {
			m[name] = (a - before.procs[name]) / time.Duration(requests)
		}
	}
	var pg time.Duration
	for pid, a := range after.pg {
		if b, ok := before.pg[pid]; ok && a >= b {
			pg += a - b
		} else {
			pg += a // started since (or a reused pid): all of its time is new
		}
	}
	m["postgres"] = pg / time.Duration(requests)
	return m
}

// schedRate is a process's schedUse between two samples, per request answered then.
type schedRate struct {
	wait     time.Duration // on a run queue, waiting for a CPU
	switches float64       // times put on a CPU
}

// schedPerRequest is schedRate for every process of cpuNames ("postgres" for all of
// PostgreSQL's, as cpuPerRequest counts them).
func schedPerRequest(before, after cpuSample, requests int64) map[string]schedRate {
	m := map[string]schedRate{}
	if requests <= 0 {
		return m
	}
	rate := func(d schedUse) schedRate {
		return schedRate{wait: d.wait / time.Duration(requests), switches: float64(d.slices) / float64(requests)}
	}
	for name, a := range after.sched {
		if b := before.sched[name]; a.slices >= b.slices {
			m[name] = rate(schedUse{wait: a.wait - b.wait, slices: a.slices - b.slices})
		}
	}
	var pg schedUse
	for pid, a := range after.pgSched {
		if b, ok := before.pgSched[pid]; ok && a.slices >= b.slices {
			a.wait, a.slices = a.wait-b.wait, a.slices-b.slices
		}
		pg.wait += a.wait
		pg.slices += a.slices
	}
	m["postgres"] = rate(pg)
	return m
}

// machineSwitches is the machine's context switches between two samples per request.
func machineSwitches(before, after cpuSample, requests int64) float64 {
	if requests <= 0 || after.switches < before.switches {
		return 0
	}
	return float64(after.switches-before.switches) / float64(requests)
}

// dbUse is what the soak's database has written so far: WAL bytes (the server's, but the
// soak is its only writer), committed transactions and the server's checkpoints.
type dbUse struct {
	wal, commits int64
	// checkpoints counts the server's checkpoints, timed and requested (-1: unknown). The
	// first change to a page after one writes the whole page to the WAL, so an interval
	// holding a checkpoint (every checkpoint_timeout, 5 minutes by default) writes more WAL
	// and costs PostgreSQL more a request than the one before it: a soak's first and last
	// intervals compare alike only when both held one or neither did.
	checkpoints int64
}

// checkpointQueries count the server's checkpoints: PostgreSQL before 17 (this machine's
// and CI's 15) keeps them in pg_stat_bgwriter, 17 and later in pg_stat_checkpointer. The
// older form goes first, so the servers the soak runs on answer the first query and log no
// error for the other each interval.
var checkpointQueries = []string{
	`SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter`,
	`SELECT num_timed + num_requested FROM pg_stat_checkpointer`,
}

// sampleDB reads dbUse; zero when the database does not answer.
func sampleDB(ctx context.Context, pg *sql.DB) dbUse {
	u := dbUse{checkpoints: -1}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = pg.QueryRowContext(ctx, `SELECT (pg_current_wal_lsn() - '0/0')::bigint,
		(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())`).Scan(&u.wal, &u.commits)
	for _, q := range checkpointQueries {
		if pg.QueryRowContext(ctx, q).Scan(&u.checkpoints) == nil {
			break
		}
	}
	return u
}

// TestSampleDBCountsCheckpoints: the soak's database sample counts the server's checkpoints,
// so an interval that held one is told from one that did not (its WAL and PostgreSQL's CPU
// per request are higher for it).
func TestSampleDBCountsCheckpoints(t *testing.T) {
	pg, err := sql.Open("pgx", dbtest.PostgresDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	ctx := context.Background()
	before := sampleDB(ctx, pg)
	if before.checkpoints < 0 || before.wal <= 0 {
		t.Fatalf("sample %+v: no checkpoint count or WAL position", before)
	}
	if _, err := pg.ExecContext(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	if after := sampleDB(ctx, pg); after.checkpoints < before.checkpoints+1 {
		t.Fatalf("checkpoints %d after a CHECKPOINT, %d before", after.checkpoints, before.checkpoints)
	}
	if got := checkpointsText(1) + ", " + checkpointsText(0) + ", " + checkpointsText(-1); got != "1 checkpoint, 0 checkpoints, checkpoints unknown" {
		t.Errorf("checkpointsText: %q", got)
	}
}
