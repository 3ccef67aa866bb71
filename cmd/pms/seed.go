package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
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
	var databaseURL, duplicates string
	var dupPct float64
	s, err := parseCommand("seed", args, stderr, func(f *flags) {
		f.String(&duplicates, "duplicates", "", "seed match.Generate's population instead (names of thirteen cultures, households, and this percentage of re-registrations with typos, nicknames, swapped dates, transliterations: \"5%\"; docs/matching.md)", "PMS_SEED_DUPLICATES")
		f.checks = append(f.checks, func() error {
			if duplicates == "" {
				return nil
			}
			v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(duplicates), "%"), 64)
			if err != nil || v < 0 || v > 50 {
				return fmt.Errorf("--duplicates: want a percentage 0..50 such as 5%%, got %q", duplicates)
			}
			dupPct = v
			return nil
		})
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
	store := patient.NewStore(d)
	// Key the records already there first (a no-op once done), so the service does not
	// re-key the seeded ones on start.
	if _, err := store.BackfillMatchKeys(ctx); err != nil {
		return err
	}
	progress := func(done int) {
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			fmt.Fprintf(stderr, "seed: %d of %d\n", done, n)
		}
	}
	if duplicates != "" {
		err = store.SeedPopulation(ctx, n, uint64(seed), dupPct, progress)
	} else {
		err = store.Seed(ctx, n, uint64(seed), progress)
	}
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "seed: %d patients in %s (%.0f/s, %s)\n", n, el.Round(time.Millisecond), float64(n)/el.Seconds(), dialectName(d))
	if d.Dialect == db.Postgres {
		// Fresh statistics on every table the seed wrote, so the planner uses the new indexes
		// and X-Total-Count's estimates hold, and vacuumed tables, so index-only scans need
		// not visit the heap.
		if _, err := d.ExecContext(ctx, `VACUUM ANALYZE patients, patient_versions, patient_match_keys`); err != nil {
			return err
		}
	}
	return nil
}
