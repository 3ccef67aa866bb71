package patient_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/patient/match"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
)

// BenchmarkRegistrationMatching is issue 19's matching cost: registrations (Service.Create,
// everything included: validation, the duplicate check's indexed candidate lookup and
// scoring, the insert with its keys, history, outbox event and audit entry) against a
// PostgreSQL database seeded with PMS_BENCH_PATIENTS (default 100,000) patients of
// match.Generate's population with 5% duplicates. Half the registrations are new people of
// another draw, half re-registrations of seeded records (copies without phone and email, day and
// month swapped when possible), so both empty and full candidate lists are
// timed. It prints p50, p99 and max of a registration under --duplicate-policy=warn and, as
// the baseline, off; and of the check alone (Duplicates with demographics, audited). Run:
//
//	go test -run '^$' -bench RegistrationMatching -benchtime 1x -timeout 30m ./pkg/patient/
//
// PMS_BENCH_DIALECT=sqlite runs it on SQLite (a file in a temporary directory).
func BenchmarkRegistrationMatching(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("PMS_BENCH_PATIENTS")); err == nil && v > 0 {
		n = v
	}
	dialect := db.Postgres
	if os.Getenv("PMS_BENCH_DIALECT") == "sqlite" {
		dialect = db.SQLite
	} else {
		dbtest.RequirePostgres(b)
	}
	d := dbtest.Open(b, dialect, migrations.Patient())
	ctx := context.Background()
	store := patient.NewStore(d)
	start := time.Now()
	if err := store.SeedPopulation(ctx, n, 1, 5, nil); err != nil {
		b.Fatal(err)
	}
	analyze := `VACUUM ANALYZE`
	if dialect == db.SQLite {
		analyze = `ANALYZE`
	}
	if _, err := d.ExecContext(ctx, analyze); err != nil {
		b.Fatal(err)
	}
	var keys int
	_ = d.GetContext(ctx, &keys, `SELECT count(*) FROM patient_match_keys`)
	b.Logf("seeded %d patients (%d blocking-key rows) in %s", n, keys, time.Since(start).Round(time.Second))

	for i := 0; i < b.N; i++ {
		// The two policies take turns, one registration each, so both see the same load
		// (the machine is shared: a policy measured after the other would be timed under
		// other conditions). Each has its own people, so neither finds the other's.
		policies := []string{patient.DuplicatePolicyOff, patient.DuplicatePolicyWarn}
		var svcs []patient.Service
		var sets [][]patient.CreateRequest
		for k, policy := range policies {
			svcs = append(svcs, newDuplicateService(b, d, policy))
			sets = append(sets, registrations(b, d, 1000, uint64(10*i+k+2)))
		}
		lats := make([][]time.Duration, len(policies))
		found := make([]int, len(policies))
		invalid := map[string]int{}
		for j := range sets[0] {
			for k, policy := range policies {
				r := sets[k][j]
				r.IdempotencyKey = fmt.Sprintf("bench-%s-%d-%d", policy, i, j)
				t0 := time.Now()
				p, err := svcs[k].Create(ctxAs("clin1"), r)
				el := time.Since(t0)
				if errs.KindOf(err) == errs.InvalidArgument {
					invalid[fmt.Sprint(errs.As(err).Fields)]++ // the generator is not the API's validator
					continue
				}
				if err != nil {
					b.Fatalf("create %d: %v", j, err)
				}
				lats[k] = append(lats[k], el)
				if p.PossibleDuplicates > 0 {
					found[k]++
				}
			}
		}
		for k, policy := range policies {
			report(b, fmt.Sprintf("registration, policy %s", policy), lats[k], fmt.Sprintf("%d of %d with possible duplicates", found[k], len(lats[k])))
		}
		if len(invalid) > 0 {
			fmt.Printf("refused as invalid (the generator is not the API's validator): %v\n", invalid)
		}
		regs := sets[1]
		s := newDuplicateService(b, d, patient.DuplicatePolicyOff)
		var lat []time.Duration
		cands := 0
		for _, r := range regs {
			t0 := time.Now()
			res, err := s.Duplicates(ctxAs("clin1"), patient.DuplicatesRequest{Patient: &r})
			el := time.Since(t0)
			if errs.KindOf(err) == errs.InvalidArgument {
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, el)
			cands += len(res.Candidates)
		}
		report(b, "duplicate check alone (Duplicates, audited)", lat, fmt.Sprintf("%d candidates shown", cands))
		lat, cands = lat[:0], 0
		for _, r := range regs {
			t0 := time.Now()
			n, err := patient.ScoreCandidates(ctx, s, r)
			el := time.Since(t0)
			if errs.KindOf(err) == errs.InvalidArgument {
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, el)
			cands += n
		}
		report(b, "candidate lookup and scoring (no audit)", lat, fmt.Sprintf("%d candidates at or above the threshold", cands))
	}
}

// registrations draws k registrations: half new people, half re-registrations of seeded ones.
func registrations(b *testing.B, d *db.DB, k int, seed uint64) []patient.CreateRequest {
	rng := rand.New(rand.NewPCG(seed, 2))
	people, _ := match.Generate(rng, k, 0)
	var out []patient.CreateRequest
	for i, p := range people[:k/2] {
		if p.DateOfBirth == "" {
			p.DateOfBirth = "1970-01-01"
		}
		if p.Email != "" { // unique: an email held by a seeded patient would be a 409
			p.Email = fmt.Sprintf("bench%d.%d.%s", seed, i, p.Email)
		}
		out = append(out, patient.CreateRequest{Name: p.Name, Family: p.Family, Given: p.Given, Gender: p.Gender, Phone: p.Phone,
			Email: p.Email, Address: p.Address, DateOfBirth: p.DateOfBirth})
	}
	var rows []struct {
		Name        string `db:"name"`
		Family      string `db:"family"`
		Gender      string `db:"gender"`
		Address     string `db:"address"`
		DateOfBirth string `db:"date_of_birth"`
	}
	if err := d.SelectContext(context.Background(), &rows, d.Rebind(`SELECT name, family, gender, address, date_of_birth FROM patients WHERE registered_date IS NOT NULL ORDER BY random() LIMIT ?`), k-len(out)); err != nil {
		b.Fatal(err)
	}
	for _, r := range rows {
		dob := r.DateOfBirth
		if t, err := time.Parse("2006-01-02", dob); err == nil && t.Day() <= 12 {
			dob = fmt.Sprintf("%04d-%02d-%02d", t.Year(), t.Day(), int(t.Month()))
		}
		// Without the email: it is held by the seeded record (a 409 of its own, item 1).
		out = append(out, patient.CreateRequest{Name: r.Name, Family: r.Family, Gender: r.Gender, Address: r.Address, DateOfBirth: dob})
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// report prints p50, p99 and max of lat.
func report(b *testing.B, what string, lat []time.Duration, extra string) {
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(10 * time.Microsecond)
	}
	fmt.Printf("%-48s n=%d  p50=%-9s p99=%-9s max=%-9s %s\n", what, len(lat), q(0.50), q(0.99), lat[len(lat)-1].Round(10*time.Microsecond), extra)
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms/"+strings.Fields(what)[0])
}
