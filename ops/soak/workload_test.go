package soak_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pms/pms/ops/cluster"
	"github.com/pms/pms/pkg/patient"
)

// patientRef is a patient the workload created: enough to read it, search for it and send
// a full PUT, plus the last version this client saw (for If-Match).
type patientRef struct {
	id, name, email, dob string

	mu      sync.Mutex
	version int64
}

func (p *patientRef) seen(v int64) {
	p.mu.Lock()
	p.version = max(p.version, v)
	p.mu.Unlock()
}

func (p *patientRef) current() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.version
}

// invoiceRef is an invoice waiting for its next step (issue, then payment of the subtotal).
type invoiceRef struct {
	id     string
	amount int64
}

// pool is the shared state of the workload: every patient created, those whose billing
// accounts the billing work may use, and invoices in flight.
//
// Billing work spreads over every patient, the seeded ones from the start (their accounts
// were seen) and each created one billableAfter after its creation (its account may
// legitimately follow the registration a moment later over Kafka). Until the twenty-ninth
// session it went to the 200 seeded patients only: a 30-minute soak gave each of them 15-20
// invoices where it began with 0.3 on average, so every list of a patient's invoices grew tenfold and
// more while the rest of the data grew by a tenth (issue 20 item 7). A clinic's data grows by
// patients; a patient's invoices stay few. Picked from the whole pool, invoices per patient
// stay about what the seeding left: the workload creates a third as many invoices as
// patients.
type pool struct {
	mu       sync.Mutex
	patients []*patientRef
	billable []*patientRef
	pending  []pendingRef // created, not yet billable, oldest first
	drafts   []invoiceRef
	opens    []invoiceRef
}

// pendingRef is a created patient waiting to join the billing work.
type pendingRef struct {
	p  *patientRef
	at time.Time
}

// billableAfter is how long after its creation a patient joins the billing work: well past
// the moment its account takes to follow, so that a missing account is the platform's error.
const billableAfter = 10 * time.Second

func (p *pool) add(r *patientRef) {
	p.mu.Lock()
	p.patients = append(p.patients, r)
	p.pending = append(p.pending, pendingRef{r, time.Now()})
	p.mu.Unlock()
}

func (p *pool) pick(rng *rand.Rand) *patientRef {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.patients[rng.IntN(len(p.patients))]
}

// pickBillable picks a patient for billing work, first taking in the created patients old
// enough for it.
func (p *pool) pickBillable(rng *rand.Rand) *patientRef {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.promote(time.Now().Add(-billableAfter))
	return p.billable[rng.IntN(len(p.billable))]
}

// promote moves the pending patients created before cutoff to the billable ones.
func (p *pool) promote(cutoff time.Time) {
	n := 0
	for n < len(p.pending) && p.pending[n].at.Before(cutoff) {
		p.billable = append(p.billable, p.pending[n].p)
		n++
	}
	p.pending = p.pending[n:]
}

// pop removes a random element of *s (which must not be empty) and returns it.
func pop[T any](rng *rand.Rand, s *[]T) T {
	i := rng.IntN(len(*s))
	v := (*s)[i]
	(*s)[i] = (*s)[len(*s)-1]
	*s = (*s)[:len(*s)-1]
	return v
}

// runner drives the platform through the gateway with one admin login, refreshed before the
// 15-minute access token expires.
type runner struct {
	c     *cluster.Cluster
	dbURL string // the services' database, for the soak's WAL and commit figures
	token atomic.Pointer[string]
	st    atomic.Pointer[stats]
	pool  pool
	seq   atomic.Int64 // makes emails and addresses unique
}

// login posts credentials (or a refresh token) to path, stores the access token for the
// workers and returns the refresh token.
func (r *runner) login(ctx context.Context, path string, body map[string]string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	code, b, err := r.c.Do(ctx, "", http.MethodPost, path, body)
	var out struct {
		Token        string `json:"token"`
		RefreshToken string `json:"refreshToken"`
	}
	if err != nil || code != http.StatusOK || json.Unmarshal(b, &out) != nil || out.Token == "" || out.RefreshToken == "" {
		return "", fmt.Errorf("%s: %d %.200s %v", path, code, b, err)
	}
	r.token.Store(&out.Token)
	return out.RefreshToken, nil
}

// op is one kind of request of the mix, with its share in percent.
type op struct {
	name   string
	weight int
	run    func(r *runner, ctx context.Context, rng *rand.Rand)
}

// mix is the workload: 80% reads, 15% creates and updates, 5% billing writes.
var mix = []op{
	{"get-patient", 35, (*runner).getPatient},
	{"search-patients", 15, (*runner).searchPatients},
	{"list-patients", 5, (*runner).listPatients},
	{"get-account", 10, (*runner).getAccount},
	{"list-invoices", 10, (*runner).listInvoices},
	{"patient-invoices", 5, (*runner).patientInvoices},
	{"create-patient", 5, (*runner).createPatient},
	{"update-patient", 10, (*runner).updatePatient},
	{"billing", 5, (*runner).billing},
}

// opNames are the names requests are counted under: the billing step's three kinds instead
// of "billing".
func opNames() []string {
	var names []string
	for _, o := range mix {
		if o.name == "billing" {
			names = append(names, "create-invoice", "issue-invoice", "pay-invoice")
		} else {
			names = append(names, o.name)
		}
	}
	return names
}

// step runs one operation of the mix chosen by weight.
func (r *runner) step(ctx context.Context, rng *rand.Rand) {
	n := rng.IntN(100)
	for _, o := range mix {
		if n < o.weight {
			o.run(r, ctx, rng)
			return
		}
		n -= o.weight
	}
}

// requestTimeout bounds one request, so that a hang is counted as an error instead of
// stalling a worker (cluster.Client has its own, longer, deadline too).
const requestTimeout = 10 * time.Second

// call sends one request and classifies the answer: want is the expected status; a 412 on
// a request carrying If-Match is the contract's answer to a racing update and is counted
// as a conflict; anything else (5xx, unexpected 4xx, transport error, timeout) is an error.
func (r *runner) call(ctx context.Context, name, method, path string, body any, want int, ifMatch string) (int, []byte) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var headers []string
	if ifMatch != "" {
		headers = []string{"If-Match", ifMatch}
	}
	start := time.Now()
	code, b, err := r.c.Do(ctx, *r.token.Load(), method, path, body, headers...)
	d := time.Since(start)
	var msg string
	conflict := false
	switch {
	case err != nil:
		msg = fmt.Sprintf("%s %s %s: %v (after %s)", name, method, path, err, d.Round(time.Millisecond))
	case code == want:
	case code == http.StatusPreconditionFailed && ifMatch != "":
		conflict = true
	default:
		msg = fmt.Sprintf("%s %s %s: %d %.300s (after %s)", name, method, path, code, b, d.Round(time.Millisecond))
	}
	r.st.Load().record(name, d, msg, conflict)
	return code, b
}

// decode reads the fields a step needs from a JSON answer; a 2xx whose body does not
// decode is an error of its own.
func (r *runner) decode(name string, b []byte, v any) bool {
	if err := json.Unmarshal(b, v); err != nil {
		r.st.Load().fail(fmt.Sprintf("%s: undecodable answer: %v: %.200s", name, err, b))
		return false
	}
	return true
}

// firstNames and lastNames are the names the workload registers and searches for: those
// `pms seed` draws from, so that the patients it registers are of the seeded population, as a
// clinic's new patients are of its old ones. A name list of its own, absent from the seeded
// records, made every name it searched for a term that only recent records match, and more
// of them every minute: the first page of such a term reads every match (docs/kafka.md,
// issue 20 item 7), which BenchmarkSearchRecentTerm measures on its own.
var firstNames, lastNames = patient.SeedNames()

// patientJSON is what the workload reads back from patient answers.
type patientJSON struct {
	ID      string `json:"id"`
	Version int64  `json:"version"`
}

func (r *runner) createPatient(ctx context.Context, rng *rand.Rand) {
	n := r.seq.Add(1)
	p := &patientRef{
		name:  firstNames[rng.IntN(len(firstNames))] + " " + lastNames[rng.IntN(len(lastNames))],
		email: fmt.Sprintf("soak-%d@soak.test", n),
		dob:   fmt.Sprintf("%d-%02d-%02d", 1930+rng.IntN(90), 1+rng.IntN(12), 1+rng.IntN(28)),
	}
	code, b := r.call(ctx, "create-patient", http.MethodPost, "/api/patients", map[string]string{
		"name": p.name, "email": p.email, "address": fmt.Sprintf("%d Soak Street", n), "dateOfBirth": p.dob,
	}, http.StatusCreated, "")
	var out patientJSON
	if code != http.StatusCreated || !r.decode("create-patient", b, &out) {
		return
	}
	p.id, p.version = out.ID, out.Version
	r.pool.add(p)
}

func (r *runner) getPatient(ctx context.Context, rng *rand.Rand) {
	p := r.pool.pick(rng)
	code, b := r.call(ctx, "get-patient", http.MethodGet, "/api/patients/"+p.id, nil, http.StatusOK, "")
	var out patientJSON
	if code == http.StatusOK && r.decode("get-patient", b, &out) {
		p.seen(out.Version)
	}
}

// searchPatients looks for a name fragment, which matches a share of the growing table.
func (r *runner) searchPatients(ctx context.Context, rng *rand.Rand) {
	names := firstNames
	if rng.IntN(2) == 0 {
		names = lastNames
	}
	q := strings.ToLower(names[rng.IntN(len(names))])
	if len(q) > 3 {
		q = q[:3+rng.IntN(len(q)-2)] // a prefix of 3 characters or more: a substring search
	}
	r.call(ctx, "search-patients", http.MethodGet, "/api/patients?limit=20&q="+q, nil, http.StatusOK, "")
}

func (r *runner) listPatients(ctx context.Context, _ *rand.Rand) {
	r.call(ctx, "list-patients", http.MethodGet, "/api/patients?limit=20", nil, http.StatusOK, "")
}

func (r *runner) getAccount(ctx context.Context, rng *rand.Rand) {
	r.call(ctx, "get-account", http.MethodGet, "/api/billing/accounts?patientId="+r.pool.pickBillable(rng).id, nil, http.StatusOK, "")
}

func (r *runner) listInvoices(ctx context.Context, rng *rand.Rand) {
	r.call(ctx, "list-invoices", http.MethodGet, "/api/billing/invoices?patientId="+r.pool.pickBillable(rng).id, nil, http.StatusOK, "")
}

// patientInvoices reads invoices through the patient service, which asks billing over gRPC.
func (r *runner) patientInvoices(ctx context.Context, rng *rand.Rand) {
	r.call(ctx, "patient-invoices", http.MethodGet, "/api/patients/"+r.pool.pickBillable(rng).id+"/invoices", nil, http.StatusOK, "")
}

// updatePatient sends a full PUT with If-Match of the last version seen. A 412 (another
// worker got there first) is answered as a client should: read the record again and retry
// once with its version.
func (r *runner) updatePatient(ctx context.Context, rng *rand.Rand) {
	p := r.pool.pick(rng)
	v := p.current()
	for attempt := 0; attempt < 2; attempt++ {
		code, b := r.call(ctx, "update-patient", http.MethodPut, "/api/patients/"+p.id, map[string]string{
			"name": p.name, "email": p.email, "address": fmt.Sprintf("%d Soak Street", r.seq.Add(1)), "dateOfBirth": p.dob,
		}, http.StatusOK, fmt.Sprintf(`"%d"`, v))
		var out patientJSON
		switch {
		case code == http.StatusOK:
			if r.decode("update-patient", b, &out) {
				p.seen(out.Version)
			}
			return
		case code != http.StatusPreconditionFailed:
			return
		}
		code, b = r.call(ctx, "reread-patient", http.MethodGet, "/api/patients/"+p.id, nil, http.StatusOK, "")
		if code != http.StatusOK || !r.decode("reread-patient", b, &out) {
			return
		}
		p.seen(out.Version)
		v = out.Version
	}
}

// backlog caps the invoices waiting for their next step; past it the step is forced.
const backlog = 50

// billing moves one invoice one step: create a draft for a seeded patient, issue a draft,
// or pay an open invoice in full. Each invoice is held by one worker at a time, so no step
// races another.
func (r *runner) billing(ctx context.Context, rng *rand.Rand) {
	p := &r.pool
	p.mu.Lock()
	switch {
	case len(p.opens) > 0 && (rng.IntN(3) == 0 || len(p.opens) > backlog):
		inv := pop(rng, &p.opens)
		p.mu.Unlock()
		r.call(ctx, "pay-invoice", http.MethodPost, "/api/billing/invoices/"+inv.id+"/payments",
			map[string]any{"amount": inv.amount, "method": "card"}, http.StatusOK, "")
	case len(p.drafts) > 0 && (rng.IntN(2) == 0 || len(p.drafts) > backlog):
		inv := pop(rng, &p.drafts)
		p.mu.Unlock()
		if code, _ := r.call(ctx, "issue-invoice", http.MethodPost, "/api/billing/invoices/"+inv.id+"/issue", nil, http.StatusOK, ""); code == http.StatusOK {
			p.mu.Lock()
			p.opens = append(p.opens, inv)
			p.mu.Unlock()
		}
	default:
		p.mu.Unlock()
		r.createInvoice(ctx, rng)
	}
}

func (r *runner) createInvoice(ctx context.Context, rng *rand.Rand) {
	code, b := r.call(ctx, "create-invoice", http.MethodPost, "/api/billing/invoices", map[string]any{
		"patientId": r.pool.pickBillable(rng).id, "currency": "USD",
		"dueDate": time.Now().UTC().AddDate(0, 0, 30).Format(time.DateOnly),
		"lines":   []map[string]any{{"description": "Consultation", "quantity": 1 + rng.IntN(3), "unitAmount": 5000 + rng.IntN(10000)}},
	}, http.StatusCreated, "")
	var out struct {
		ID       string `json:"id"`
		Subtotal int64  `json:"subtotal"`
	}
	if code != http.StatusCreated || !r.decode("create-invoice", b, &out) {
		return
	}
	r.pool.mu.Lock()
	r.pool.drafts = append(r.pool.drafts, invoiceRef{out.ID, out.Subtotal})
	r.pool.mu.Unlock()
}
