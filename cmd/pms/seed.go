package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/db"
)

// runSeed is `pms seed --patients N`: N synthetic patients bulk-inserted straight through the
// patient store (patient.Store.Seed), for benchmarks and demos. It migrates the patient
// database first, like the service would; it writes no events or audit entries (docs/api.md).
func runSeed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var n, seed int
	var databaseURL string
	s, err := parseCommand("seed", args, stderr, func(f *flags) {
		f.Int(&n, "patients", 1000, "how many synthetic patients to add", "PMS_SEED_PATIENTS").positive()
		f.Int(&seed, "seed", 1, "the generator's seed: the same seed draws the same people (ids and emails stay unique across runs)", "PMS_SEED_SEED").atLeast(0)
		f.String(&databaseURL, "patient-database-url", "", "patient database URL (overrides --database-url)", "PMS_PATIENT_DATABASE_URL")
	})
	if err != nil {
		return err
	}
	d, err := openServiceDB(ctx, s, "patient", databaseURL, migrations.Patient(), patient.DatabaseOptions()...)
	if err != nil {
		return err
	}
	defer d.Close()
	start, last := time.Now(), time.Now()
	err = patient.NewStore(d).Seed(ctx, n, uint64(seed), func(done int) {
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			fmt.Fprintf(stderr, "seed: %d of %d\n", done, n)
		}
	})
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "seed: %d patients in %s (%.0f/s, %s)\n", n, el.Round(time.Millisecond), float64(n)/el.Seconds(), dialectName(d))
	if d.Dialect == db.Postgres {
		// Fresh statistics, so the planner uses the new indexes and X-Total-Count's estimates
		// hold, and a vacuumed table, so index-only scans need not visit the heap.
		if _, err := d.ExecContext(ctx, `VACUUM ANALYZE patients`); err != nil {
			return err
		}
	}
	return nil
}
