package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
)

// backupSchedule is `pms all`'s own backups: every --backup-every into --backup-dir, the
// newest --backup-keep kept.
type backupSchedule struct {
	every     time.Duration
	dir       string
	keep      int
	recipient string
}

func (b *backupSchedule) register(f *flags) {
	f.Duration(&b.every, "backup-every", 0, "take an encrypted backup of the embedded databases this often (0: never; pms backup takes one by hand)", "PMS_BACKUP_EVERY").atLeast(0)
	f.String(&b.dir, "backup-dir", "", "where the scheduled backups go (pms-<time>.backup, mode 0600); keep it off the data folder's disk", "PMS_BACKUP_DIR")
	f.Int(&b.keep, "backup-keep", 14, "how many scheduled backups to keep (the oldest are deleted)", "PMS_BACKUP_KEEP").within(1, 100000)
	f.String(&b.recipient, "backup-recipient", "", "the age recipient (age1...) scheduled backups are encrypted to (pms backup keygen)", "PMS_BACKUP_RECIPIENT")
}

// backupPrefix and backupSuffix frame a scheduled backup's file name; only such files are
// ever deleted by --backup-keep.
const backupPrefix, backupSuffix = "pms-", ".backup"

// backupMetrics are the scheduled backups' figures, on the gateway's admin port.
type backupMetrics struct {
	lastSuccess, duration, size prometheus.Gauge
	failures                    prometheus.Counter
}

func newBackupMetrics(reg prometheus.Registerer) *backupMetrics {
	m := &backupMetrics{
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pms_backup_last_success_timestamp_seconds",
			Help: "When the last scheduled backup that succeeded finished (Unix time; 0 before the first)."}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pms_backup_duration_seconds",
			Help: "How long the last scheduled backup took, whether it succeeded or not."}),
		size: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pms_backup_size_bytes",
			Help: "The size of the last scheduled backup that succeeded (encrypted file)."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "pms_backup_failures_total",
			Help: "Scheduled backups that failed (the error is logged)."}),
	}
	reg.MustRegister(m.lastSuccess, m.duration, m.size, m.failures)
	return m
}

// scheduled returns the actor taking the backups of dataDir on b's schedule (nil when off),
// and checks the settings: an error stops `pms all` from starting.
func (b backupSchedule) scheduled(s settings, dataDir string, reg prometheus.Registerer, logger log.Logger) (func(g *run.Group), error) {
	if b.every == 0 {
		return nil, nil
	}
	if s.databaseURL != "" {
		return nil, errors.New("--backup-every backs up the embedded SQLite databases; with --database-url use the database's own tools (PostgreSQL: pgBackRest, docs/operations.md)")
	}
	if b.dir == "" {
		return nil, errors.New("--backup-every needs --backup-dir")
	}
	r, err := parseRecipient(b.recipient)
	if err != nil {
		return nil, fmt.Errorf("--backup-every: %w", err)
	}
	m := newBackupMetrics(reg)
	logger = log.With(logger, "component", "backup")
	return func(g *run.Group) {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			t := time.NewTicker(b.every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
					b.once(ctx, dataDir, r, m, logger)
				}
			}
		}, func(error) { cancel() })
	}, nil
}

// once takes one scheduled backup and prunes the old ones; a failure is logged and counted,
// never fatal to the platform.
func (b backupSchedule) once(ctx context.Context, dataDir string, r age.Recipient, m *backupMetrics, logger log.Logger) {
	start := time.Now()
	out := filepath.Join(b.dir, backupPrefix+start.UTC().Format("20060102T150405.000Z")+backupSuffix)
	_, size, err := takeBackup(ctx, dataDir, r, out)
	m.duration.Set(time.Since(start).Seconds())
	if err != nil {
		m.failures.Inc()
		_ = level.Error(logger).Log("msg", "scheduled backup failed", "err", err)
		return
	}
	m.lastSuccess.Set(float64(time.Now().Unix()))
	m.size.Set(float64(size))
	_ = level.Info(logger).Log("msg", "scheduled backup taken", "file", out, "bytes", size, "seconds", time.Since(start).Seconds())
	if err := b.prune(); err != nil {
		_ = level.Warn(logger).Log("msg", "pruning old backups failed", "err", err)
	}
}

// prune deletes the oldest scheduled backups beyond --backup-keep (their names sort by time).
func (b backupSchedule) prune() error {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && strings.HasPrefix(n, backupPrefix) && strings.HasSuffix(n, backupSuffix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var errs []error
	for len(names) > b.keep {
		errs = append(errs, os.Remove(filepath.Join(b.dir, names[0])))
		names = names[1:]
	}
	return errors.Join(errs...)
}
