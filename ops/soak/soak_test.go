// Package soak_test is the load and soak run of issue 9: the platform as separate `pms`
// processes (ops/cluster) on PostgreSQL, a mixed workload through the gateway at a share of
// the measured peak for a while, and per-interval figures (throughput, errors, p50/p99,
// every process's RSS) printed and written as CSV.
//
// `make soak DURATION=10m` runs it for real; `go test` without SOAK_DURATION runs a short
// smoke version so that the code keeps working.
package soak_test

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/ops/cluster"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// config is the run's shape, from the environment.
type config struct {
	peak     time.Duration // closed-loop probe of the peak throughput
	duration time.Duration // open-loop soak at load times the peak
	load     float64       // the share of the probe's peak the soak offers (SOAK_LOAD)
	interval time.Duration // one row of figures per interval
	// window is how much of the run's start and end each operation's p99 is also compared
	// over (SOAK_P99_WINDOW), enough for every operation to have a p99 worth the name.
	window  time.Duration
	refresh time.Duration // how often the access token is refreshed
	// cpuProfile is how long each CPU profile samples, at minute 2 and before the end:
	// long enough for auth's background work (about 15 ms of CPU a second under the soak)
	// to give a few hundred samples.
	cpuProfile time.Duration
	csvPath    string
	smoke      bool
	patients   int // bulk-seeded before the services start (SOAK_PATIENTS)
	// rate, when not 0, is the load offered instead of a share of the peak (SOAK_RATE, in
	// requests per second), so that two builds or settings can be soaked at the same load.
	rate float64
	// gomaxprocs, when not 0, is every platform process's GOMAXPROCS (SOAK_GOMAXPROCS,
	// default defaultGOMAXPROCS; 0 leaves Go's own, the machine's CPUs).
	gomaxprocs int
	// retention of the command, reply and dead-letter topics (SOAK_RETENTION; 0: the
	// production defaults), short so that it bites within the run.
	retention time.Duration
}

// Shape of the workload.
const (
	seedPatients = 200 // patients created before the probe; the billing work starts on them
	seedInvoices = 60  // billing steps run while seeding, so invoices exist to read
	peakWorkers  = 32  // closed-loop workers of the peak probe
	soakWorkers  = 64  // the open loop's pool: more than enough at half the peak
	// defaultLoad is the share of the peak offered when SOAK_LOAD is not set. The probe's
	// closed loop of 32 workers batches more (audit entries, commits, Kafka records) than a
	// steady load does, so it overstates what the machine sustains: at half of it this
	// 2-core machine ran 95-98% busy, where a 3% change in CPU per request doubles the
	// queue and p99 measures the run queue, not the platform (issue 20 item 7, nineteenth
	// session: 2.1-3.4x over 30 minutes with CPU per request flat); at 0.35, 79-88%.
	defaultLoad = 0.35
	// defaultGOMAXPROCS is each platform process's GOMAXPROCS unless SOAK_GOMAXPROCS says
	// otherwise. Six processes share this machine's two CPUs, and no one of them needs more
	// than one at the soak's load: with two each, a goroutine made ready while its process
	// runs wakes a second thread to run it (a futex wake-up, a thread spinning for work, a
	// context switch), work a single P queues instead. Two alternated pairs of 4-minute soaks
	// at 160 requests/s (issue 20 item 7, thirtieth session): CPU a request 8,434 and 8,438 µs
	// with 1 against 9,930 and 9,184 with Go's default, the machine 78% busy against 84-90%,
	// context switches 181-185 a request against 215-221, p99 53-57 ms against 86-112.
	defaultGOMAXPROCS = 1
	// lateAfter is how far behind its schedule a request may leave before it counts as late
	// (the dispatcher ticks every 5 ms).
	lateAfter = 100 * time.Millisecond
	// rssLimit is the growth allowed between the steady state and the end of a long run.
	rssLimit = 1.10
	// brokerBytesPerRecord bounds the embedded broker's RSS growth per record it retains: a
	// record costs its size plus about 130 bytes (BenchmarkRetainedBytes), and the soak's
	// events are well under a kilobyte, so more than this is memory beyond its data.
	brokerBytesPerRecord = 2048
	// rssCheckFrom is the shortest soak whose RSS growth is asserted; shorter runs report it.
	rssCheckFrom = 10 * time.Minute
)

// loadConfig: SOAK_DURATION set is a real soak (interval SOAK_INTERVAL, default 1m; CSV at
// SOAK_CSV, default soak.csv here); unset is the smoke run (10 s probe, 30 s soak, 10 s
// intervals, a token refresh every 10 s, CSV in a temporary folder). SOAK_PEAK_DURATION
// overrides the probe (20 s).
func loadConfig(t *testing.T) config {
	t.Helper()
	// The access token lives 15 minutes; it is refreshed well before, with the refresh token
	// as a client would (a login would also spike auth's memory with the password hash, in
	// the middle of the RSS figures). The smoke run refreshes often to exercise it.
	cfg := config{smoke: os.Getenv("SOAK_DURATION") == "", refresh: 5 * time.Minute, load: defaultLoad, cpuProfile: 20 * time.Second,
		gomaxprocs: defaultGOMAXPROCS}
	if cfg.smoke {
		cfg.peak = cluster.EnvDuration(t, "SOAK_PEAK_DURATION", 10*time.Second)
		cfg.duration = 30 * time.Second
		cfg.interval = cluster.EnvDuration(t, "SOAK_INTERVAL", 10*time.Second)
		cfg.csvPath = filepath.Join(t.TempDir(), "soak.csv")
		cfg.refresh = 10 * time.Second
		cfg.cpuProfile = 2 * time.Second
	} else {
		cfg.peak = cluster.EnvDuration(t, "SOAK_PEAK_DURATION", 20*time.Second)
		cfg.duration = cluster.EnvDuration(t, "SOAK_DURATION", 0)
		cfg.interval = cluster.EnvDuration(t, "SOAK_INTERVAL", time.Minute)
		cfg.window = cluster.EnvDuration(t, "SOAK_P99_WINDOW", 5*time.Minute)
		cfg.csvPath = "soak.csv"
	}
	if p := os.Getenv("SOAK_CSV"); p != "" {
		cfg.csvPath = p
	}
	if os.Getenv("SOAK_RETENTION") != "" {
		cfg.retention = cluster.EnvDuration(t, "SOAK_RETENTION", 0)
	}
	if v := os.Getenv("SOAK_LOAD"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1 {
			t.Fatalf("SOAK_LOAD: want a share of the peak in (0, 1], got %q", v)
		}
		cfg.load = f
	}
	if v := os.Getenv("SOAK_RATE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			t.Fatalf("SOAK_RATE: want requests per second above 0, got %q", v)
		}
		cfg.rate = f
	}
	if v := os.Getenv("SOAK_GOMAXPROCS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("SOAK_GOMAXPROCS: want a count of CPUs (0: Go's default), got %q", v)
		}
		cfg.gomaxprocs = n
	}
	if v := os.Getenv("SOAK_PATIENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("SOAK_PATIENTS: want a count of patients, got %q", v)
		}
		cfg.patients = n
	}
	if d, ok := t.Deadline(); ok && time.Until(d) < cfg.peak+cfg.duration+3*time.Minute {
		t.Fatalf("go test -timeout leaves %s, the run needs %s plus set-up: raise SOAK_TIMEOUT",
			time.Until(d).Round(time.Second), cfg.peak+cfg.duration)
	}
	return cfg
}

// TestSoak starts the platform, seeds it, measures the peak with closed-loop workers, then
// offers defaultLoad (SOAK_LOAD) of that rate open-loop for the duration, reporting every
// interval. It fails on any error (5xx, transport error, timeout, unexpected 4xx), on an
// interval in which no request completed (a hang), on a process that died, and, for runs of
// 10 minutes or more, on a service whose RSS grew more than 10% from the steady state to the
// end, or on a broker that grew by more than brokerBytesPerRecord per record it retained
// since minute 2.
func TestSoak(t *testing.T) {
	cfg := loadConfig(t)
	tail := cluster.NewTail(300)
	dbURL := dbtest.PostgresDatabase(t)
	seedBulk(t, dbURL, cfg.patients)
	extra := map[string][]string{}
	for _, name := range profiled {
		extra[name] = []string{"--pprof"}
	}
	if cfg.retention > 0 {
		// Every process: the services create their topics, the broker the reply topics
		// and applies retention.
		for _, name := range cluster.Order {
			extra[name] = append(extra[name], "--kafka-retention-commands="+cfg.retention.String(),
				"--kafka-retention-replies="+cfg.retention.String(), "--kafka-retention-dlq="+cfg.retention.String(),
				"--kafka-retention-check="+max(time.Second, cfg.retention/4).String())
		}
	}
	var env []string
	if cfg.gomaxprocs > 0 {
		env = []string{"GOMAXPROCS=" + strconv.Itoa(cfg.gomaxprocs)}
		t.Logf("every platform process runs with GOMAXPROCS=%d", cfg.gomaxprocs)
	}
	c := cluster.Start(t, cluster.Options{DatabaseURL: dbURL, NoRateLimits: true, Logs: tail, DatabaseConns: 16, Extra: extra, Env: env})
	defer func() {
		if t.Failed() {
			t.Logf("last log lines:\n%s", tail.String())
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	r := &runner{c: c, dbURL: dbURL}
	refresh, err := r.login(ctx, "/auth/login", map[string]string{"email": cluster.AdminEmail, "password": cluster.AdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	var refreshes atomic.Int64
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	bg.Go(func() {
		every(ctx, cfg.refresh, func() {
			next, err := r.login(ctx, "/auth/refresh", map[string]string{"refreshToken": refresh})
			if err != nil {
				if ctx.Err() == nil {
					r.st.Load().fail("refresh: " + err.Error())
				}
				return
			}
			refresh = next
			refreshes.Add(1)
		})
	})

	seed(t, ctx, r)

	peakSt := &stats{}
	r.st.Store(peakSt)
	start := time.Now()
	closedLoop(ctx, r, peakWorkers, cfg.peak)
	probe := peakSt.swap()
	peak := float64(probe.requests) / time.Since(start).Seconds()
	rate := peak * cfg.load
	if cfg.rate > 0 {
		rate = cfg.rate
	}
	t.Logf("peak probe: %d workers, %s, %d requests, %.0f req/s, %d errors, p50 %s ms, p99 %s ms; soak at %.0f req/s for %s",
		peakWorkers, cfg.peak, probe.requests, peak, probe.errors, ms(percentile(probe.lat, 0.50)), ms(percentile(probe.lat, 0.99)), rate, cfg.duration)
	if probe.errors > 0 {
		t.Fatalf("%d errors during the peak probe; first: %q", probe.errors, peakSt.errs())
	}
	if rate < 1 {
		t.Fatalf("peak of %.2f req/s: nothing to soak with", peak)
	}

	rows := soak(t, ctx, r, cfg, rate)
	summarize(t, cfg, rows)
	r.pool.mu.Lock()
	t.Logf("billing work spread over %d patients at the end (%d seeded; %d more created in the last %s, not yet)", len(r.pool.billable), seedPatients, len(r.pool.pending), billableAfter)
	r.pool.mu.Unlock()
	t.Logf("access token refreshed %d times", refreshes.Load())
	if refreshes.Load() == 0 && cfg.refresh < cfg.duration {
		t.Error("the access token was never refreshed")
	}
	for _, name := range cluster.Order {
		if !c.Proc(name).Running() {
			t.Errorf("%s exited during the soak", name)
		}
	}
}

// seed creates the patients (whose billing accounts it waits for) and a first set of
// invoices; any error here fails the test before the load starts.
func seed(t *testing.T, ctx context.Context, r *runner) {
	t.Helper()
	st := &stats{}
	r.st.Store(st)
	rng := rand.New(rand.NewPCG(1, 1))
	work := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 2))
			for range work {
				r.createPatient(ctx, rng)
			}
		})
	}
	for range seedPatients {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	if errs := st.swap().errors; errs > 0 {
		t.Fatalf("seeding: %d errors; first: %q", errs, st.errs())
	}
	// The patient service opens each account over gRPC as it registers the patient (and
	// billing again from the topic); wait until every seeded patient's account is there.
	deadline := time.Now().Add(time.Minute)
	for _, p := range r.pool.patients {
		for {
			code, b, err := r.c.Do(ctx, *r.token.Load(), http.MethodGet, "/api/billing/accounts?patientId="+p.id, nil)
			if err == nil && code == http.StatusOK && len(b) > 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no billing account for a seeded patient within a minute: %d %s %v", code, b, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	r.pool.mu.Lock()
	r.pool.billable, r.pool.pending = append([]*patientRef(nil), r.pool.patients...), nil
	r.pool.mu.Unlock()
	for range seedInvoices {
		r.billing(ctx, rng)
	}
	if iv := st.swap(); iv.errors > 0 {
		t.Fatalf("seeding invoices: %d errors; first: %q", iv.errors, st.errs())
	}
	t.Logf("seeded %d patients, %d drafts and %d open invoices", len(r.pool.patients), len(r.pool.drafts), len(r.pool.opens))
}

// closedLoop runs workers that each send the next request as soon as the last one answers.
func closedLoop(ctx context.Context, r *runner, workers int, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 3))
			for ctx.Err() == nil {
				r.step(context.WithoutCancel(ctx), rng)
			}
		})
	}
	wg.Wait()
}

// row is one interval's figures.
type row struct {
	index    int
	elapsed  time.Duration // since the soak began, at the interval's end
	length   time.Duration
	iv       interval
	p50, p99 time.Duration
	rss      map[string]int64 // the interval's peak (rows[0]: one sample after warm-up)
	// mem is each process's memory at the interval's end, split into what it holds
	// (anonymous) and the executable's pages it has touched (file), to read an RSS growth by.
	mem map[string]cluster.Memory
	// cpu is each process's CPU time per request answered in the interval (cpuNames).
	cpu map[string]time.Duration
	// sched is each process's (cpuNames) times put on a CPU and time waiting for one, per
	// request; switches the machine's context switches per request.
	sched    map[string]schedRate
	switches float64
	// walPerReq and commitsPerReq are the database's WAL bytes and commits per request.
	walPerReq, commitsPerReq float64
	// checkpoints is how many checkpoints the server made in the interval (-1: unknown).
	checkpoints int64
	busy        float64 // the machine's CPU busy in the interval, percent (-1: unknown)
	// gauge is the machine's speed gauge in the interval: the CPU time each half of its
	// fixed work took (gauge_test.go; 0: no sample).
	gauge gaugeReading
}

// cpuNames are the processes whose CPU per request the soak reports: the cluster's and
// PostgreSQL's.
var cpuNames = append(slices.Clone(cluster.Order), "postgres")

func sampleRSS(c *cluster.Cluster) map[string]int64 {
	m := map[string]int64{}
	for _, name := range cluster.Order {
		m[name] = c.Proc(name).RSS()
	}
	return m
}

func sampleMemory(c *cluster.Cluster) map[string]cluster.Memory {
	m := map[string]cluster.Memory{}
	for _, name := range cluster.Order {
		m[name] = c.Proc(name).Memory()
	}
	return m
}

// peakRSS samples every process's RSS every period until the given time and returns each
// one's highest value. A single sample lands anywhere on the garbage collector's sawtooth;
// the interval's peak is what the process needed, and it is steady when nothing leaks.
func peakRSS(c *cluster.Cluster, until time.Time, period time.Duration) map[string]int64 {
	peak := sampleRSS(c)
	for {
		left := time.Until(until)
		if left <= 0 {
			return peak
		}
		time.Sleep(min(period, left)) // pacing the samples and the report
		for name, v := range sampleRSS(c) {
			peak[name] = max(peak[name], v)
		}
	}
}

// soak offers rate requests per second open-loop for cfg.duration: a dispatcher schedules
// request i at start + i/rate and hands it to a pool of workers; one that leaves more than
// lateAfter behind its schedule (every worker busy) is counted late. Every interval it
// prints and writes a row. rows[0] is the RSS right after the peak probe.
func soak(t *testing.T, ctx context.Context, r *runner, cfg config, rate float64) []row {
	t.Helper()
	f, err := os.Create(cfg.csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := csv.NewWriter(f)
	header := []string{"interval", "elapsed_s", "requests", "req_per_s", "errors", "late", "conflicts_412", "p50_ms", "p99_ms"}
	for _, name := range cluster.Order {
		header = append(header, "rss_max_"+name+"_mib")
	}
	for _, name := range cpuNames {
		header = append(header, "cpu_us_per_req_"+name)
	}
	for _, name := range cpuNames {
		header = append(header, "switches_per_req_"+name)
	}
	for _, name := range cpuNames {
		header = append(header, "runq_wait_us_per_req_"+name)
	}
	header = append(header, "wal_bytes_per_req", "commits_per_req", "machine_busy_pct", "checkpoints", "gauge_compute_us", "gauge_memory_us",
		"gauge_wakeup_us", "machine_switches_per_req")
	_ = w.Write(header)
	t.Logf("%8s %9s %9s %8s %6s %6s %5s %8s %8s %8s %8s %8s %8s %9s %8s", "interval", "elapsed", "requests", "req/s", "errors", "late", "412", "p50ms", "p99ms",
		"broker", "auth", "billing", "patient", "analytics", "gateway")

	st := &stats{}
	r.st.Store(st)
	rows := []row{{rss: sampleRSS(r.c)}}
	cpuPrev := cpuUse(r.c)
	gctx, stopGauge := context.WithCancel(ctx)
	defer stopGauge()
	speed := startGauge(gctx, gaugePeriod)
	pg, err := sql.Open("pgx", r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	dbPrev := sampleDB(ctx, pg)
	jobs := make(chan time.Time, soakWorkers)
	var workers sync.WaitGroup
	for i := range soakWorkers {
		workers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 4))
			for at := range jobs {
				if time.Since(at) > lateAfter {
					st.lateDispatch()
				}
				r.step(ctx, rng)
			}
		})
	}
	start := time.Now()
	stop := make(chan struct{})
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		defer close(jobs)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		sent := 0
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				for due := int(now.Sub(start).Seconds() * rate); sent < due; sent++ {
					select {
					case jobs <- start.Add(time.Duration(float64(sent) / rate * float64(time.Second))):
					case <-stop:
						return
					}
				}
			}
		}
	}()

	end := start.Add(cfg.duration)
	prev := start
	// The broker's memory per retained record: its RSS and the records it holds at minute 2
	// (or the first interval of a shorter run) and at the end, with the heap profiles.
	dir := filepath.Dir(cfg.csvPath)
	var mark struct {
		done     bool
		rss, rec int64
	}
	snapshot := func(label string) (int64, int64) {
		heapProfiles(t, r.c, dir, label)
		rec, err := retained(r.c)
		if err != nil {
			t.Logf("records retained by the broker: %v", err)
		}
		rss := r.c.Proc("broker").RSS()
		t.Logf("broker at %s: RSS %s MiB, %d records retained, %.0f bytes of RSS per retained record", label, mib(rss), rec, float64(rss)/float64(max(rec, 1)))
		return rss, rec
	}
	// The CPU profiles sample while the load runs: one right after the minute-2 snapshot,
	// one ending just before the load stops.
	var profiling sync.WaitGroup
	profiling.Go(func() {
		select {
		case <-time.After(time.Until(end.Add(-cfg.cpuProfile - 2*time.Second))):
			cpuProfiles(t, r.c, dir, "end", cfg.cpuProfile)
		case <-ctx.Done():
		}
	})
	for i := 1; ; i++ {
		until := start.Add(min(time.Duration(i)*cfg.interval, cfg.duration))
		rss := peakRSS(r.c, until, max(time.Second, cfg.interval/12))
		last := !until.Before(end)
		if last {
			close(stop)
			<-dispatched
			workers.Wait()
		}
		now := time.Now()
		iv := st.swap()
		cpuNow := cpuUse(r.c)
		rw := row{index: i, elapsed: now.Sub(start), length: now.Sub(prev), iv: iv, checkpoints: -1,
			p50: percentile(iv.lat, 0.50), p99: percentile(iv.lat, 0.99), rss: rss, mem: sampleMemory(r.c), cpu: cpuPerRequest(cpuPrev, cpuNow, iv.requests),
			sched: schedPerRequest(cpuPrev, cpuNow, iv.requests), switches: machineSwitches(cpuPrev, cpuNow, iv.requests), busy: machineBusy(cpuPrev, cpuNow)}
		cpuPrev = cpuNow
		rw.gauge = speed.take()
		dbNow := sampleDB(ctx, pg)
		if dbNow.wal > 0 && dbPrev.wal > 0 && iv.requests > 0 {
			rw.walPerReq = float64(dbNow.wal-dbPrev.wal) / float64(iv.requests)
			rw.commitsPerReq = float64(dbNow.commits-dbPrev.commits) / float64(iv.requests)
		}
		if dbNow.checkpoints >= 0 && dbPrev.checkpoints >= 0 {
			rw.checkpoints = dbNow.checkpoints - dbPrev.checkpoints
		}
		dbPrev = dbNow // a failed sample leaves the next interval without figures, not with two intervals' worth
		prev = now
		rows = append(rows, rw)
		rps := float64(iv.requests) / rw.length.Seconds()
		line := []string{strconv.Itoa(i), fmt.Sprintf("%.1f", rw.elapsed.Seconds()), strconv.FormatInt(iv.requests, 10),
			fmt.Sprintf("%.1f", rps), strconv.FormatInt(iv.errors, 10), strconv.FormatInt(iv.late, 10),
			strconv.FormatInt(iv.conflicts, 10), ms(rw.p50), ms(rw.p99)}
		for _, name := range cluster.Order {
			line = append(line, mib(rw.rss[name]))
		}
		cpuLine := make([]string, 0, len(cpuNames))
		schedLine := make([]string, 0, len(cpuNames))
		for _, name := range cpuNames {
			cpu := us(rw.cpu[name])
			line = append(line, cpu)
			cpuLine = append(cpuLine, name+" "+cpu)
			schedLine = append(schedLine, fmt.Sprintf("%s %.1f/%s", name, rw.sched[name].switches, us(rw.sched[name].wait)))
		}
		for _, name := range cpuNames {
			line = append(line, fmt.Sprintf("%.2f", rw.sched[name].switches))
		}
		for _, name := range cpuNames {
			line = append(line, us(rw.sched[name].wait))
		}
		line = append(line, fmt.Sprintf("%.0f", rw.walPerReq), fmt.Sprintf("%.2f", rw.commitsPerReq), fmt.Sprintf("%.0f", rw.busy),
			strconv.FormatInt(rw.checkpoints, 10), us(rw.gauge.compute), us(rw.gauge.memory), us(rw.gauge.wakeup), fmt.Sprintf("%.1f", rw.switches))
		_ = w.Write(line)
		w.Flush()
		if err := w.Error(); err != nil {
			t.Errorf("writing %s: %v", cfg.csvPath, err)
		}
		t.Logf("%8d %8.0fs %9d %8.1f %6d %6d %5d %8s %8s %8s %8s %8s %8s %9s %8s", i, rw.elapsed.Seconds(), iv.requests, rps, iv.errors, iv.late,
			iv.conflicts, ms(rw.p50), ms(rw.p99), mib(rw.rss["broker"]), mib(rw.rss["auth"]), mib(rw.rss["billing"]),
			mib(rw.rss["patient"]), mib(rw.rss["analytics"]), mib(rw.rss["gateway"]))
		t.Logf("%8d per request: CPU µs %s; WAL %.0f bytes, %.2f commits; machine %.0f%% busy, %.1f context switches, gauge %s/%s/%s µs; %s", i, strings.Join(cpuLine, ", "),
			rw.walPerReq, rw.commitsPerReq, rw.busy, rw.switches, us(rw.gauge.compute), us(rw.gauge.memory), us(rw.gauge.wakeup), checkpointsText(rw.checkpoints))
		t.Logf("%8d per request: times on a CPU / µs waiting for one: %s", i, strings.Join(schedLine, ", "))
		if iv.requests == 0 {
			t.Errorf("interval %d: no request completed (a hang?)", i)
		}
		if !mark.done && (rw.elapsed >= 2*time.Minute || last || cfg.smoke) {
			mark.done = true
			mark.rss, mark.rec = snapshot("min2")
			if !last {
				profiling.Go(func() { cpuProfiles(t, r.c, dir, "min2", cfg.cpuProfile) })
			}
		}
		if last {
			rss, rec := snapshot("end")
			if rec > mark.rec {
				perRecord := float64(rss-mark.rss) / float64(rec-mark.rec)
				t.Logf("broker growth from minute 2 to the end: %+.1f MiB RSS for %+d retained records: %.0f bytes per retained record",
					float64(rss-mark.rss)/(1<<20), rec-mark.rec, perRecord)
				if cfg.duration >= rssCheckFrom && perRecord > brokerBytesPerRecord {
					t.Errorf("broker: RSS grew %.0f bytes per retained record from minute 2 to the end, over %d: more than the records it keeps",
						perRecord, brokerBytesPerRecord)
				}
			}
			break
		}
	}
	profiling.Wait()
	if tot := st.totals(); tot.errors > 0 {
		t.Errorf("%d errors in %d requests; first: %q", tot.errors, tot.requests, st.errs())
	}
	if cfg.smoke {
		smokeEvidence(t, dir, rows)
	}
	abs, _ := filepath.Abs(cfg.csvPath)
	t.Logf("CSV: %s", abs)
	return rows
}

// smokeEvidence checks, in the smoke run, that the figures the report explains a long soak
// by were taken: every process's CPU profiles at both moments, and the speed gauge's three
// halves in some interval.
func smokeEvidence(t *testing.T, dir string, rows []row) {
	t.Helper()
	for _, name := range profiled {
		for _, label := range []string{"min2", "end"} {
			path := filepath.Join(dir, "cpu-"+name+"-"+label+".pb.gz")
			if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
				t.Errorf("no CPU profile of %s at %s: %v", name, label, err)
			}
		}
	}
	for _, rw := range rows[1:] {
		if g := rw.gauge; g.compute > 0 && g.memory > 0 && g.wakeup > 0 {
			return
		}
	}
	t.Errorf("no interval has the speed gauge's three figures")
}

// summarize prints the totals, each operation's latency in the first and the last interval
// and its p99 over the first and last cfg.window,
// and each process's RSS after warm-up (one sample right after the peak probe), in the
// second interval (the steady state: caches filled, the probe's garbage returned) and in
// the last one, both interval peaks. For runs of rssCheckFrom or more, a process whose RSS
// grew by more than rssLimit from the second interval to the last fails the test.
func summarize(t *testing.T, cfg config, rows []row) {
	t.Helper()
	var tot interval
	for _, rw := range rows[1:] {
		tot.requests += rw.iv.requests
		tot.errors += rw.iv.errors
		tot.late += rw.iv.late
		tot.conflicts += rw.iv.conflicts
	}
	soaked := rows[len(rows)-1].elapsed
	t.Logf("total: %d requests in %s (%.1f req/s), %d errors, %d late, %d conflicts (412)",
		tot.requests, soaked.Round(time.Second), float64(tot.requests)/soaked.Seconds(), tot.errors, tot.late, tot.conflicts)
	first, last := rows[1], rows[len(rows)-1]
	// p99 last/first is issue 20 item 7's criterion (p99Rule), read off the report, not
	// asserted: a latency depends on what else the machine runs.
	t.Logf("%-17s %8s %8s %8s   %8s %8s %8s %9s", "by operation", "n int.1", "p50ms", "p99ms", "n int."+strconv.Itoa(last.index), "p50ms", "p99ms", "p99 ratio")
	var worst worstRatio
	for _, o := range append([]string{"reread-patient"}, opNames()...) {
		a, b := first.iv.byOp[o], last.iv.byOp[o]
		ratio := "-"
		if pa := percentile(a, 0.99); pa > 0 && len(b) > 0 {
			r := float64(percentile(b, 0.99)) / float64(pa)
			ratio = fmt.Sprintf("%.2fx", r)
			worst.see(o, r)
		}
		t.Logf("%-17s %8d %8s %8s   %8d %8s %8s %9s", o, len(a), ms(percentile(a, 0.5)), ms(percentile(a, 0.99)),
			len(b), ms(percentile(b, 0.5)), ms(percentile(b, 0.99)), ratio)
	}
	t.Logf("item 7's rule, p99 of interval %d against interval %d: %s", last.index, first.index, worst)
	// The rarer operations answer about 200 requests a minute at this load, and a p99 of 200
	// latencies is their third-highest: one request held up by anything else on the machine
	// moves it by half. So each operation's p99 is also compared over the run's first and
	// last windows of several intervals (cfg.window), each over 1,000 samples for every
	// operation.
	if k := int((cfg.window + cfg.interval - 1) / cfg.interval); cfg.window > cfg.interval && 2*k <= len(rows)-1 {
		merge := func(rs []row, op string) []time.Duration {
			var out []time.Duration
			for _, rw := range rs {
				out = append(out, rw.iv.byOp[op]...)
			}
			return out
		}
		head, tail := rows[1:1+k], rows[len(rows)-k:]
		t.Logf("%-17s %8s %8s   %8s %8s %9s   (intervals %d-%d against %d-%d)", "by operation", "n first", "p99ms", "n last", "p99ms", "p99 ratio",
			head[0].index, head[k-1].index, tail[0].index, tail[k-1].index)
		var worst worstRatio
		for _, o := range opNames() {
			a, b := merge(head, o), merge(tail, o)
			ratio := "-"
			if pa := percentile(a, 0.99); pa > 0 && len(b) > 0 {
				r := float64(percentile(b, 0.99)) / float64(pa)
				ratio = fmt.Sprintf("%.2fx", r)
				worst.see(o, r)
			}
			t.Logf("%-17s %8d %8s   %8d %8s %9s", o, len(a), ms(percentile(a, 0.99)), len(b), ms(percentile(b, 0.99)), ratio)
		}
		t.Logf("item 7's rule over the windows, p99 of intervals %d-%d against %d-%d: %s",
			tail[0].index, tail[k-1].index, head[0].index, head[k-1].index, worst)
		gauges := func(rs []row) gaugeReading {
			var cs, ms, ws []time.Duration
			for _, rw := range rs {
				if rw.gauge.compute > 0 {
					cs, ms, ws = append(cs, rw.gauge.compute), append(ms, rw.gauge.memory), append(ws, rw.gauge.wakeup)
				}
			}
			return medianReading(cs, ms, ws)
		}
		if h, tl := gauges(head), gauges(tail); h.compute > 0 && h.memory > 0 && h.wakeup > 0 {
			t.Logf("the machine's speed gauge over the same windows (µs of CPU for its fixed work): compute %d -> %d (%.2fx), memory %d -> %d (%.2fx), wakeup %d -> %d (%.2fx)",
				h.compute.Microseconds(), tl.compute.Microseconds(), float64(tl.compute)/float64(h.compute),
				h.memory.Microseconds(), tl.memory.Microseconds(), float64(tl.memory)/float64(h.memory),
				h.wakeup.Microseconds(), tl.wakeup.Microseconds(), float64(tl.wakeup)/float64(h.wakeup))
		}
	}
	// CPU per request moves far less than latency when the machine is busy, though it moves:
	// beside it, the times each process was put on a CPU a request tell a process doing more
	// rounds of work (switches up with CPU) from each round costing more (switches flat, as
	// when the machine is busier).
	t.Logf("%-10s %12s %12s %8s   %-9s %8s %8s %8s", "CPU µs/req", "interval "+strconv.Itoa(first.index), "interval "+strconv.Itoa(last.index), "ratio",
		"switches", "first", "last", "ratio")
	for _, name := range cpuNames {
		a, b := first.cpu[name], last.cpu[name]
		sa, sb := first.sched[name].switches, last.sched[name].switches
		t.Logf("%-10s %12d %12d %7.2fx   %-9s %8.2f %8.2f %7.2fx", name, a.Microseconds(), b.Microseconds(), ratioOf(float64(b), float64(a)),
			"", sa, sb, ratioOf(sb, sa))
	}
	// The machine's speed gauge beside them (gauge_test.go): a CPU a request that grew with
	// it is the machine's doing, not the platform's.
	for _, g := range []struct {
		name string
		a, b time.Duration
	}{{"gauge cpu", first.gauge.compute, last.gauge.compute}, {"gauge mem", first.gauge.memory, last.gauge.memory},
		{"gauge wake", first.gauge.wakeup, last.gauge.wakeup}} {
		t.Logf("%-10s %12d %12d %7.2fx", g.name, g.a.Microseconds(), g.b.Microseconds(), ratioOf(float64(g.b), float64(g.a)))
	}
	t.Logf("machine's context switches a request, interval %d -> %d: %.1f -> %.1f", first.index, last.index, first.switches, last.switches)
	t.Logf("per request, interval %d -> %d: WAL %.0f -> %.0f bytes, commits %.2f -> %.2f; machine %.0f%% -> %.0f%% busy; %s -> %s",
		first.index, last.index, first.walPerReq, last.walPerReq, first.commitsPerReq, last.commitsPerReq, first.busy, last.busy,
		checkpointsText(first.checkpoints), checkpointsText(last.checkpoints))
	warm, end := rows[0], rows[len(rows)-1]
	steady := rows[min(2, len(rows)-1)]
	t.Logf("%-10s %14s %12s %10s %9s %9s", "RSS MiB", "after warm-up", "interval "+strconv.Itoa(steady.index), "end", "Δ warm", "Δ steady")
	for _, name := range cluster.Order {
		a, s, e := warm.rss[name], steady.rss[name], end.rss[name]
		sm, em := steady.mem[name], end.mem[name]
		t.Logf("%-10s %14s %12s %10s %+8.1f%% %+8.1f%%   of which anonymous %s -> %s MiB (%+.1f%%), file %s -> %s MiB (%+.1f%%)",
			name, mib(a), mib(s), mib(e), growth(a, e), growth(s, e),
			mib(sm.Anon), mib(em.Anon), growth(sm.Anon, em.Anon), mib(sm.File), mib(em.File), growth(sm.File, em.File))
		// The broker is judged per retained record (run): the event topics keep every event by
		// design (issue 20 item 7), so its RSS follows the data it holds.
		if cfg.duration >= rssCheckFrom && name != "broker" && s > 0 && float64(e) > float64(s)*rssLimit {
			t.Errorf("%s: RSS grew from %s MiB (interval %d) to %s MiB at the end, over %.0f%%",
				name, mib(s), steady.index, mib(e), (rssLimit-1)*100)
		}
	}
}

// ratioOf is b/a, 0 when a is not above 0.
func ratioOf(b, a float64) float64 {
	if a <= 0 {
		return 0
	}
	return b / a
}

// growth is the change from a to b in percent (0 when a is unknown).
func growth(a, b int64) float64 {
	if a <= 0 {
		return 0
	}
	return (float64(b)/float64(a) - 1) * 100
}

// checkpointsText says how many checkpoints the server made in an interval.
func checkpointsText(n int64) string {
	switch {
	case n < 0:
		return "checkpoints unknown"
	case n == 1:
		return "1 checkpoint"
	}
	return strconv.FormatInt(n, 10) + " checkpoints"
}
