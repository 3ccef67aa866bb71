package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pms/pms/ops/cluster"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
)

// change is one acknowledged write: the patient and the version the answer carried.
type change struct {
	id      string
	version int64
}

// ledger is what a client of the platform was promised: every 2xx it got, and a count of
// every other answer, by status (0: no answer — refused, reset or timed out).
type ledger struct {
	mu       sync.Mutex
	acked    []change
	versions map[string]int64 // id → highest acknowledged version
	creates  int
	updates  int
	codes    map[int]int
	samples  []string // the first unexpected answers, for the failure message
	lastOK   time.Time
	lastBad  time.Time // when the last answer other than 2xx arrived
}

func newLedger() *ledger { return &ledger{versions: map[string]int64{}, codes: map[int]int{}} }

func (l *ledger) ok(c change, create bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked = append(l.acked, c)
	if c.version > l.versions[c.id] {
		l.versions[c.id] = c.version
	}
	if create {
		l.creates++
	} else {
		l.updates++
	}
	l.lastOK = time.Now()
}

func (l *ledger) saw(code int, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.codes[code]++
	if code < 200 || code >= 300 {
		l.lastBad = time.Now()
	}
	if (code == 0 || code >= 500) && len(l.samples) < 10 {
		l.samples = append(l.samples, fmt.Sprintf("%d %s", code, what))
	}
}

// count returns how many answers had a status for which match says true.
func (l *ledger) count(match func(code int) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for c, k := range l.codes {
		if match(c) {
			n += k
		}
	}
	return n
}

// lastFailure is when the last answer other than 2xx arrived (zero: none).
func (l *ledger) lastFailure() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastBad
}

// since is when the last 2xx arrived.
func (l *ledger) lastSuccess() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastOK
}

func (l *ledger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	codes := make([]int, 0, len(l.codes))
	for c := range l.codes {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var b strings.Builder
	fmt.Fprintf(&b, "creates %d, updates %d acknowledged; answers:", l.creates, l.updates)
	for _, c := range codes {
		fmt.Fprintf(&b, " %d×%d", c, l.codes[c])
	}
	if len(l.samples) > 0 {
		fmt.Fprintf(&b, "; first failures: %s", strings.Join(l.samples, " | "))
	}
	return b.String()
}

// writer keeps creating and updating patients through base (the gateway, or one service),
// like a front desk that retries a create with the same Idempotency-Key until it gets an
// answer, and records every acknowledgement in its ledger.
type writer struct {
	do     func(ctx context.Context, method, path string, body any, headers ...string) (int, []byte, error)
	ledger *ledger
	run    string
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// patientBody is a valid patient whose address changes with n, so every update makes a new
// version.
func patientBody(email string, n int) map[string]string {
	return map[string]string{"name": "Fault Patient", "email": email, "address": strconv.Itoa(n) + " Main St", "dateOfBirth": "1980-02-03"}
}

// startWriter runs workers until stop is called; stop waits for their last answers (a
// create being retried finishes its retries first).
func startWriter(c *cluster.Cluster, token string, workers int, l *ledger) *writer {
	return startWriterOn(func(ctx context.Context, method, path string, body any, headers ...string) (int, []byte, error) {
		return c.Do(ctx, token, method, path, body, headers...)
	}, workers, l)
}

func startWriterOn(do func(ctx context.Context, method, path string, body any, headers ...string) (int, []byte, error), workers int, l *ledger) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{do: do, ledger: l, run: strconv.FormatInt(time.Now().UnixNano(), 36), cancel: cancel}
	for i := range workers {
		w.wg.Add(1)
		go func() { defer w.wg.Done(); w.work(ctx, i) }()
	}
	return w
}

func (w *writer) stop() {
	w.cancel()
	w.wg.Wait()
}

// pause backs off after a failed answer, ending early when the writer stops.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

type owned struct {
	id      string
	version int64 // what this worker believes is current (after a 412 it re-reads)
	email   string
}

func (w *writer) work(ctx context.Context, worker int) {
	var mine []owned
	n := 0
	for ctx.Err() == nil {
		n++
		if len(mine) < 3 || rand.IntN(10) < 5 {
			if p, ok := w.create(ctx, worker, n); ok {
				mine = append(mine, p)
			}
			continue
		}
		p := &mine[rand.IntN(len(mine))]
		w.update(ctx, p, n)
	}
}

// create posts one new patient, retrying with the same key while the answer is missing or
// a 5xx (at most about 30 s, even after stop: an in-doubt create is settled, not dropped).
func (w *writer) create(ctx context.Context, worker, n int) (owned, bool) {
	email := fmt.Sprintf("w%d-%d-%s@faults.test", worker, n, w.run)
	key := "fault-" + w.run + "-" + strconv.Itoa(worker) + "-" + strconv.Itoa(n)
	for attempt := 0; attempt < 150; attempt++ {
		rctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		code, b, err := w.do(rctx, http.MethodPost, "/api/patients", patientBody(email, n), "Idempotency-Key", key)
		cancel()
		w.ledger.saw(code, "POST "+errText(err, b))
		if code == http.StatusCreated || code == http.StatusOK {
			var p struct {
				ID      string `json:"id"`
				Version int64  `json:"version"`
			}
			if json.Unmarshal(b, &p) != nil || p.ID == "" {
				w.ledger.saw(-1, "create answer "+string(b))
				return owned{}, false
			}
			w.ledger.ok(change{p.ID, p.Version}, true)
			return owned{id: p.ID, version: p.Version, email: email}, true
		}
		if code == refused {
			pause(ctx, 50*time.Millisecond)
			return owned{}, false
		}
		if code != 0 && code < 500 {
			return owned{}, false
		}
		pause(context.Background(), 200*time.Millisecond)
	}
	return owned{}, false
}

// update puts a new address with If-Match; a missing answer or 5xx is not retried (a PUT
// with If-Match that did commit would answer 412), the worker re-reads instead.
func (w *writer) update(ctx context.Context, p *owned, n int) {
	rctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	code, b, err := w.do(rctx, http.MethodPut, "/api/patients/"+p.id, patientBody(p.email, n), "If-Match", `"`+strconv.FormatInt(p.version, 10)+`"`)
	w.ledger.saw(code, "PUT "+errText(err, b))
	switch {
	case code == http.StatusOK:
		var out struct {
			Version int64 `json:"version"`
		}
		if json.Unmarshal(b, &out) == nil && out.Version > 0 {
			w.ledger.ok(change{p.id, out.Version}, false)
			p.version = out.Version
		}
	case code == http.StatusPreconditionFailed || code == 0 || code >= 500:
		if code != http.StatusPreconditionFailed {
			pause(ctx, 100*time.Millisecond)
		}
		gc, gb, _ := w.do(rctx, http.MethodGet, "/api/patients/"+p.id, nil)
		var out struct {
			Version int64 `json:"version"`
		}
		if gc == http.StatusOK && json.Unmarshal(gb, &out) == nil && out.Version > 0 {
			p.version = out.Version
		}
	}
}

func errText(err error, body []byte) string {
	if err != nil {
		return err.Error()
	}
	if len(body) > 200 {
		body = body[:200]
	}
	return string(body)
}

// topicEvents reads the whole patient topic (every record up to the high-water marks) and
// returns its events by patient id and version.
func topicEvents(t *testing.T, c *cluster.Cluster) map[change][]string {
	t.Helper()
	out := map[change][]string{}
	for _, m := range c.Records(t, "patient", 60*time.Second) {
		var e eventsv1.PatientEvent
		if err := proto.Unmarshal(m.Value, &e); err != nil {
			t.Fatalf("undecodable event at %s/%d/%d: %v", m.Topic, m.Partition, m.Offset, err)
		}
		k := change{e.GetPatientId(), e.GetVersion()}
		out[k] = append(out[k], e.GetEventId())
	}
	return out
}

// eventFigures compares the ledger with the patient topic: acknowledged changes with no
// event (lost), and changes published under more than one event id (committed twice).
func eventFigures(l *ledger, events map[change][]string) (lost int, twice int, missing []change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.acked {
		if len(events[c]) == 0 {
			lost++
			if len(missing) < 5 {
				missing = append(missing, c)
			}
		}
	}
	for _, ids := range events {
		seen := map[string]bool{}
		for _, id := range ids {
			seen[id] = true
		}
		if len(seen) > 1 {
			twice++
		}
	}
	return lost, twice, missing
}

// waitEvents polls the topic until every acknowledged change has its event or within
// passes, and returns the last reading and how long it took.
func waitEvents(t *testing.T, c *cluster.Cluster, l *ledger, within time.Duration) (map[change][]string, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		ev := topicEvents(t, c)
		if lost, _, _ := eventFigures(l, ev); lost == 0 || time.Since(start) > within {
			return ev, time.Since(start)
		}
		time.Sleep(250 * time.Millisecond) // poll interval of a deadline-bound wait
	}
}

// summary is the analytics figures the suite compares with its ledger.
type summary struct {
	Patients struct {
		Registered int64 `json:"registered"`
		Updated    int64 `json:"updated"`
	} `json:"patients"`
	Lag int64 `json:"lag"`
}

// waitAnalytics polls the analytics summary until cond holds or within passes.
func waitAnalytics(t *testing.T, c *cluster.Cluster, token string, within time.Duration, cond func(summary) bool) (summary, time.Duration, bool) {
	t.Helper()
	start := time.Now()
	var s summary
	for {
		code, b, err := c.Do(context.Background(), token, http.MethodGet, "/api/analytics/summary", nil)
		if err == nil && code == http.StatusOK && json.Unmarshal(b, &s) == nil && cond(s) {
			return s, time.Since(start), true
		}
		if time.Since(start) > within {
			return s, time.Since(start), false
		}
		time.Sleep(250 * time.Millisecond) // poll interval of a deadline-bound wait
	}
}

// stored reads every acknowledged patient back and returns those missing or older than
// acknowledged.
func stored(t *testing.T, c *cluster.Cluster, token string, l *ledger) (missing []string) {
	t.Helper()
	l.mu.Lock()
	versions := make(map[string]int64, len(l.versions))
	for id, v := range l.versions {
		versions[id] = v
	}
	l.mu.Unlock()
	for id, v := range versions {
		code, b, err := c.Do(context.Background(), token, http.MethodGet, "/api/patients/"+id, nil)
		var p struct {
			Version int64 `json:"version"`
		}
		if err != nil || code != http.StatusOK || json.Unmarshal(b, &p) != nil || p.Version < v {
			missing = append(missing, fmt.Sprintf("%s v%d: %d %s", id, v, code, errText(err, b)))
		}
	}
	return missing
}
