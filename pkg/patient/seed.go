package patient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
)

// seedBatch is how many patients one statement of Seed inserts: 15 arguments a row stays well
// under both databases' limit on bound parameters.
const seedBatch = 1000

// SeedActor is the changed_by of the history rows Seed writes.
const SeedActor = "pms-seed"

var (
	seedFirst = strings.Fields(`Ada Alan Amara Anna Ben Carla Chen Dara Diego Elena Emil Fatima Grace Hana Ibrahim
		Ines Jonas Julia Kai Kofi Lara Liam Lucia Maya Mateo Mila Nadia Noah Olga Omar Priya Rafael Rosa
		Sami Sofia Tariq Uma Viktor Wen Yara Yusuf Zoe`)
	seedLast = strings.Fields(`Abbott Achebe Bauer Chandra Costa Dubois Eriksen Fischer Garcia Haddad Hopper Ivanova
		Jensen Kowalski Lovelace Mendes Moreau Nakamura Novak Okafor Oliveira Petrov Quinn Rossi Santos
		Schmidt Silva Tanaka Turing Ueda Vargas Weber Xu Yilmaz Zhang`)
	seedStreets = strings.Fields(`Main Oak Elm Station Mill Church Park Harbour Market Chapel Bridge Meadow`)
	seedCities  = strings.Fields(`Leeds Lyon Porto Gdansk Utrecht Aarhus Graz Turin Malmo Cork`)
)

// SeedNames returns the given and family names Seed draws from, so that a load test
// registers and searches for patients of the seeded population (ops/soak).
func SeedNames() (given, family []string) { return slices.Clone(seedFirst), slices.Clone(seedLast) }

// Seed registers n synthetic patients straight through the store (benchmarks and demos:
// `pms seed --patients N`): realistic names, unique emails, addresses and dates of birth from a
// generator seeded with seed (the same seed, the same people; ids and emails differ), in transactions of seedBatch
// multi-row inserts, each patient with its MRN and its first history row like a create. It
// writes no outbox event and no audit entry: seeded records are bulk test data, not
// registrations, so billing opens no account for them and analytics does not count them
// (docs/api.md, "Seeding"). progress, when not nil, is called after every batch.
func (s *Store) Seed(ctx context.Context, n int, seed uint64, progress func(done int)) error {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	at := time.Now().UTC()
	return s.seedAll(ctx, n, at, func(int) Patient { return seedPatient(rng, at) }, progress)
}

// seedWorkers is how many of a seed's batches are inserted at once on PostgreSQL: one
// backend inserting a batch (its rows, history and the entries of every index, three trigram
// GINs among them) is bound by one core, so a batch per core. SQLite has one writer.
func seedWorkers(d db.Dialect) int {
	if d != db.Postgres {
		return 1
	}
	return max(1, min(runtime.GOMAXPROCS(0), 4))
}

// seedAll inserts n patients drawn in order by draw(0), draw(1), ... in batches of seedBatch,
// each in its own transaction. The draws and, on PostgreSQL, each batch's registration
// numbers (seedSeqs) are taken in order by one goroutine, so the same generator gives the
// same people in the same registration order; the inserts of up to seedWorkers batches run
// at once. progress, when not nil, is called with the number of patients committed so far,
// one call at a time. On an error no new batch starts; the batches committed stay.
func (s *Store) seedAll(ctx context.Context, n int, at time.Time, draw func(i int) Patient, progress func(done int)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type batch struct {
		ps   []Patient
		seqs []int64
	}
	batches := make(chan batch)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done int
	)
	for range seedWorkers(s.db.Dialect) {
		wg.Go(func() {
			for b := range batches {
				if ctx.Err() != nil {
					continue // a batch failed: drain what the producer sent before it saw that
				}
				if err := s.inTx(ctx, func(tx *sqlx.Tx) error { return s.seedBatch(ctx, tx, b.ps, b.seqs, at) }); err != nil {
					cancel(err)
					continue
				}
				mu.Lock()
				done += len(b.ps)
				if progress != nil {
					progress(done)
				}
				mu.Unlock()
			}
		})
	}
	var err error
	for i := 0; i < n && err == nil; {
		ps := make([]Patient, min(seedBatch, n-i))
		for j := range ps {
			ps[j] = draw(i + j)
		}
		var seqs []int64
		if seqs, err = s.seedSeqs(ctx, len(ps)); err == nil {
			select {
			case batches <- batch{ps, seqs}:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		i += len(ps)
	}
	close(batches)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause // a batch failed: its error, not the cancellation it caused
	}
	return err
}

// seedSeqs takes n registration numbers from the patients' identity sequence on PostgreSQL,
// in order, and reports the largest to the high-water marks (db.Issued) before any is used,
// as a create does (insertPatient). SQLite has no sequence to take from: nil, and seedBatch
// takes the numbers its insert returns.
func (s *Store) seedSeqs(ctx context.Context, n int) ([]int64, error) {
	if s.db.Dialect != db.Postgres {
		return nil, nil
	}
	var seqs []int64
	if err := s.db.SelectContext(ctx, &seqs, `SELECT nextval(pg_get_serial_sequence('patients', 'seq')) FROM generate_series(1, $1) ORDER BY 1`, n); err != nil {
		return nil, db.Classify(err)
	}
	if len(seqs) != n {
		return nil, fmt.Errorf("seed: %d registration numbers taken for %d patients", len(seqs), n)
	}
	return seqs, s.db.Issued("patients", seqs[n-1])
}

// seedPatient draws one synthetic patient. The email carries 48 bits of the patient's random
// id, so it is unique among every seeded patient whatever the seed and however many runs.
func seedPatient(rng *rand.Rand, at time.Time) Patient {
	first, last := seedFirst[rng.IntN(len(seedFirst))], seedLast[rng.IntN(len(seedLast))]
	id := uuid.NewString()
	dob := time.Date(1930, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(90*365))
	return Patient{
		ID:     id,
		Name:   first + " " + last,
		Family: last,
		Given:  []string{first},
		Phone:  fmt.Sprintf("+1 555 %03d %04d", rng.IntN(1000), rng.IntN(10000)),
		Email:  fmt.Sprintf("%s.%s.%s@example.org", strings.ToLower(first), strings.ToLower(last), id[24:]),
		Address: fmt.Sprintf("%d %s Street, %s", 1+rng.IntN(200), seedStreets[rng.IntN(len(seedStreets))],
			seedCities[rng.IntN(len(seedCities))]),
		DateOfBirth:     dob.Format(dateLayout),
		RegisteredDate:  at.Format(dateLayout),
		Version:         1,
		CreatedAt:       at,
		UpdatedAt:       at,
		Confidentiality: "normal",
	}
}

// seedBatch inserts ps with their MRNs, their history rows and their match keys. With seqs
// (PostgreSQL: ps[i] is registration number seqs[i]) each row is inserted with its number and
// MRN at once, as a create does: setting the MRN afterwards is an UPDATE of an indexed column,
// a second version of every row with an entry in every index, the three trigram GINs among
// them, which made a seeded patient cost twice the writes. Without (SQLite), the rows are
// inserted first and their MRNs set from the numbers the insert returned.
func (s *Store) seedBatch(ctx context.Context, tx *sqlx.Tx, ps []Patient, seqs []int64, at time.Time) error {
	var b strings.Builder
	args := make([]any, 0, len(ps)*14)
	b.WriteString(`INSERT INTO patients (id, name, family, given, gender, phone, email, address, date_of_birth, registered_date, version, created_at, updated_at`)
	row := "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)"
	if seqs != nil {
		b.WriteString(`, seq, mrn) OVERRIDING SYSTEM VALUE VALUES `)
		row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)"
	} else {
		b.WriteString(`) VALUES `)
	}
	mrns := make(map[string]string, len(ps))
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
		args = append(args, p.ID, p.Name, p.Family, encodeGiven(p.Given), p.Gender, p.Phone, p.Email, p.Address, p.DateOfBirth, p.RegisteredDate, s.db.Time(at), s.db.Time(at))
		if seqs != nil {
			mrns[p.ID] = MRN(seqs[i])
			args = append(args, seqs[i], mrns[p.ID])
		}
	}
	if seqs != nil {
		if _, err := tx.ExecContext(ctx, tx.Rebind(b.String()), args...); err != nil {
			return db.Classify(err)
		}
		return s.seedHistory(ctx, tx, ps, mrns, at)
	}
	b.WriteString(" RETURNING id, seq")
	var rows []struct {
		ID  string `db:"id"`
		Seq int64  `db:"seq"`
	}
	if err := tx.SelectContext(ctx, &rows, tx.Rebind(b.String()), args...); err != nil {
		return db.Classify(err)
	}
	b.Reset()
	args = args[:0]
	b.WriteString(`WITH v (seq, mrn) AS (VALUES `)
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(CAST(? AS BIGINT), ?)")
		mrns[r.ID] = MRN(r.Seq)
		args = append(args, r.Seq, mrns[r.ID])
	}
	b.WriteString(`) UPDATE patients SET mrn = v.mrn FROM v WHERE patients.seq = v.seq`)
	if _, err := tx.ExecContext(ctx, tx.Rebind(b.String()), args...); err != nil {
		return db.Classify(err)
	}
	return s.seedHistory(ctx, tx, ps, mrns, at)
}

// seedHistory inserts the first history row of each of ps (with its MRN from mrns) and their
// match keys.
func (s *Store) seedHistory(ctx context.Context, tx *sqlx.Tx, ps []Patient, mrns map[string]string, at time.Time) error {
	var b strings.Builder
	args := make([]any, 0, len(ps)*16)
	b.WriteString(`INSERT INTO patient_versions (patient_id, version, change, mrn, name, family, given, gender, phone, email, address, date_of_birth, registered_date,
		created_at, changed_at, changed_by, role, request_id, confidentiality) VALUES `)
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'admin', '', 'normal')")
		args = append(args, p.ID, ChangeCreated, mrns[p.ID], p.Name, p.Family, encodeGiven(p.Given), p.Gender, p.Phone, p.Email, p.Address, p.DateOfBirth, p.RegisteredDate,
			s.db.Time(at), s.db.Time(at), SeedActor)
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(b.String()), args...); err != nil {
		return db.Classify(err)
	}
	return s.writeMatchKeys(ctx, tx, ps) // duplicates_store.go
}
