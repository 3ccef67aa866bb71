package patient

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/pms/pms/pkg/patient/match"
)

// SeedPopulation is Seed with match.Generate's population (`pms seed --duplicates P%`):
// names from thirteen naming traditions (Cyrillic and Greek scripts included), households
// sharing addresses, phones and emails, and dupPct percent of the records re-registrations
// of another with typos, nicknames, swapped dates, transliterations and missing fields
// (docs/matching.md, "Measured"). The generator's identifiers are left out: its duplicates
// share national ids that are unique among live patients, and its MRN is replaced by the
// platform's own. Records whose date of birth the generator dropped are left out too (the
// table requires one; about 10% more are drawn to make up for them).
// Like Seed it writes no events or audit entries; the blocking keys are written with each
// batch, so the seeded records are duplicate candidates at once.
func (s *Store) SeedPopulation(ctx context.Context, n int, seed uint64, dupPct float64, progress func(done int)) error {
	rng := rand.New(rand.NewPCG(seed, 0xd0b1e5))
	drawn, _ := match.Generate(rng, n+n/10+10, dupPct)
	people := make([]match.Person, 0, n)
	for _, p := range drawn {
		if p.DateOfBirth != "" && len(people) < n { // the table requires a date of birth
			people = append(people, p)
		}
	}
	n = min(n, len(people))
	at := time.Now().UTC()
	return s.seedAll(ctx, n, at, func(i int) Patient { return populationPatient(people[i], at) }, progress)
}

// populationPatient is a generated person as a seeded record.
func populationPatient(p match.Person, at time.Time) Patient {
	given := p.Given
	if given == nil {
		given = []string{}
	}
	return Patient{
		ID: uuid.NewString(), Name: displayName(p.Name, p.Family, p.Given), Family: p.Family, Given: given, Gender: p.Gender,
		Phone: p.Phone, Email: p.Email, Address: p.Address, DateOfBirth: p.DateOfBirth,
		RegisteredDate: at.Format(dateLayout), Version: 1, CreatedAt: at, UpdatedAt: at, Confidentiality: ConfidentialityNormal,
	}
}
