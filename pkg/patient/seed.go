package patient

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
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
	for done := 0; done < n; {
		size := min(seedBatch, n-done)
		ps := make([]Patient, size)
		for i := range ps {
			ps[i] = seedPatient(rng, at)
		}
		if err := s.inTx(ctx, func(tx *sqlx.Tx) error { return s.seedBatch(ctx, tx, ps, at) }); err != nil {
			return err
		}
		done += size
		if progress != nil {
			progress(done)
		}
	}
	return nil
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

// seedBatch inserts ps in three statements: the rows, their MRNs (which come from the
// registration sequence numbers the insert returned) and their history rows.
func (s *Store) seedBatch(ctx context.Context, tx *sqlx.Tx, ps []Patient, at time.Time) error {
	var b strings.Builder
	args := make([]any, 0, len(ps)*8)
	b.WriteString(`INSERT INTO patients (id, name, family, given, gender, phone, email, address, date_of_birth, registered_date, version, created_at, updated_at) VALUES `)
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)")
		args = append(args, p.ID, p.Name, p.Family, encodeGiven(p.Given), p.Gender, p.Phone, p.Email, p.Address, p.DateOfBirth, p.RegisteredDate, s.db.Time(at), s.db.Time(at))
	}
	b.WriteString(" RETURNING id, seq")
	var rows []struct {
		ID  string `db:"id"`
		Seq int64  `db:"seq"`
	}
	if err := tx.SelectContext(ctx, &rows, tx.Rebind(b.String()), args...); err != nil {
		return db.Classify(err)
	}
	mrns := make(map[string]string, len(rows))
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
	b.Reset()
	args = args[:0]
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
