package analytics

import (
	"context"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// AuditTable is analytics' audit table.
const AuditTable = "audit_log"

// The audit actions of analytics' operations (allowed or refused).
const (
	// ActionReadSummary is the audit action of GET /summary.
	ActionReadSummary = "read_summary"
	// ActionVerifyAudit is the audit action of a verification of the audit chain, the name
	// every service gives it.
	ActionVerifyAudit = "audit.verify"
)

// AuditLog is where the service writes its audit entries; Append returns once the entry is
// durably stored (pkg/platform/audit.Writer).
type AuditLog interface {
	Append(ctx context.Context, e audit.Entry) error
}

// Service serves the figures (the endpoint set implements it too, over any wire).
type Service interface {
	// GetSummary returns the figures, the days limited to q's range.
	GetSummary(ctx context.Context, q SummaryQuery) (Summary, error)
	// VerifyAudit walks the audit chain and returns the verdict (docs/audit.md).
	VerifyAudit(ctx context.Context) (audit.Report, error)
}

// Folder folds consumed events into the figures; the event consumer calls it as the service
// itself, not through the guarded endpoints.
type Folder interface {
	Fold(ctx context.Context, ev Event) error
}

// BatchFolder folds many events in one transaction (Store.FoldBatch): all of them or none.
type BatchFolder interface {
	Folder
	FoldBatch(ctx context.Context, evs []Event) error
}

// WatermarksFunc reports the oldest offset and high-water mark of every partition of topics
// (the Kafka transport asks the brokers).
type WatermarksFunc func(ctx context.Context, topics []string) (map[Partition]Watermarks, error)

// Options configure the service.
type Options struct {
	// Watermarks gives the partitions' ends for the lag; nil leaves the lag at its last
	// known value (0).
	Watermarks WatermarksFunc
	// LagTTL is how long a measured lag is reused (default 1 s), so a busy /summary does not
	// ask the brokers on every call.
	LagTTL time.Duration
	// Audit, when set, records every summary read (success or rejected) before it is
	// answered; refusals are recorded by the guard's DeniedAuditor.
	Audit AuditLog
	// Folded learns of every newly folded event (metrics).
	Folded func(ev Event, at time.Time)
	Logger log.Logger
}

// Analytics implements Service and Folder on a Store.
type Analytics struct {
	store *Store
	o     Options

	mu      sync.Mutex
	lag     int64
	lagAt   time.Time
	lagLock sync.Mutex // one measurement at a time
}

// NewService returns the analytics service over store.
func NewService(store *Store, o Options) *Analytics {
	if o.LagTTL == 0 {
		o.LagTTL = time.Second
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	return &Analytics{store: store, o: o}
}

// Fold applies ev once: a repeat of its event id changes nothing.
func (a *Analytics) Fold(ctx context.Context, ev Event) error {
	if ev.ID == "" {
		return errs.Invalid(map[string]string{"event_id": "must not be empty"})
	}
	fresh, err := a.store.Fold(ctx, ev)
	if err != nil {
		return err
	}
	if fresh && a.o.Folded != nil {
		a.o.Folded(ev, time.Now())
	}
	return nil
}

// FoldBatch applies evs in one transaction, each once: repeats of an event id (folded
// before or earlier in evs) change nothing. An event without an id refuses the whole batch,
// so the caller can fold its events one by one and refuse only that one.
func (a *Analytics) FoldBatch(ctx context.Context, evs []Event) error {
	for _, ev := range evs {
		if ev.ID == "" {
			return errs.Invalid(map[string]string{"event_id": "must not be empty"})
		}
	}
	fresh, err := a.store.FoldBatch(ctx, evs)
	if err != nil {
		return err
	}
	if a.o.Folded != nil {
		now := time.Now()
		for i, ev := range evs {
			if fresh[i] {
				a.o.Folded(ev, now)
			}
		}
	}
	return nil
}

// ValidateQuery checks a summary's day range: days as YYYY-MM-DD, from not after to.
func ValidateQuery(q SummaryQuery) error {
	var f errs.Fields
	var from, to time.Time
	var err error
	if q.From != "" {
		if from, err = time.Parse(DayLayout, q.From); err != nil {
			f.Add("from", "must be a day as YYYY-MM-DD")
		}
	}
	if q.To != "" {
		if to, err = time.Parse(DayLayout, q.To); err != nil {
			f.Add("to", "must be a day as YYYY-MM-DD")
		}
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		f.Add("to", "must not be before from")
	}
	return f.Err()
}

// GetSummary implements Service. With an audit log, a summary is answered only once its read
// was audited.
func (a *Analytics) GetSummary(ctx context.Context, q SummaryQuery) (Summary, error) {
	s, err := a.summary(ctx, q)
	if a.o.Audit != nil {
		actor, role := authz.Actor(ctx)
		outcome := audit.OutcomeSuccess
		switch {
		case errs.KindOf(err) == errs.InvalidArgument:
			outcome = audit.OutcomeRejected
		case err != nil:
			outcome = audit.OutcomeError
		}
		aerr := a.o.Audit.Append(ctx, audit.Entry{Actor: actor, Role: role, Action: ActionReadSummary, Outcome: outcome,
			RequestID: observe.RequestID(ctx), ClientAddress: observe.ClientAddr(ctx)})
		if aerr != nil && err == nil {
			return Summary{}, aerr
		}
	}
	return s, err
}

// VerifyAudit implements Service: it walks analytics' audit chain (audit.VerifyTable) and
// returns the verdict `pms audit verify --service analytics` prints; a broken chain is a
// verdict (ok false, the first bad seq), not an error. With an audit log the verification is
// itself audited, and the verdict served only once that entry is written (audit.Read).
func (a *Analytics) VerifyAudit(ctx context.Context) (audit.Report, error) {
	rep, err := audit.VerifyTable(ctx, a.store.db, AuditTable, "analytics")
	if a.o.Audit == nil {
		return rep, err
	}
	return audit.Read(audit.Recorder{W: a.o.Audit, Logger: a.o.Logger}, ctx, ActionVerifyAudit, "", rep, err)
}

// DeniedAuditor returns the guard's hook that audits refused summary reads as "denied".
func DeniedAuditor(log AuditLog) authz.DeniedFunc {
	return audit.Denied(log, Ops.Actions(), nil)
}

// MetricsSource is the figures for the metrics collector: unaudited (a scrape is not a read
// by anyone), never the lag's broker round trip more than once a second.
func (a *Analytics) MetricsSource(ctx context.Context) (Summary, error) {
	return a.summary(ctx, SummaryQuery{})
}

func (a *Analytics) summary(ctx context.Context, q SummaryQuery) (Summary, error) {
	if err := ValidateQuery(q); err != nil {
		return Summary{}, err
	}
	s, err := a.store.Summary(ctx, q)
	if err != nil {
		return Summary{}, err
	}
	s.Lag = a.Lag(ctx)
	return s, nil
}

// Lag is the consumer lag summed over every partition of the folded topics: each
// partition's high-water mark minus the next offset to fold (its oldest offset when none was
// folded yet). It is measured at most once per LagTTL; when the brokers cannot be asked, the
// last known value is returned.
func (a *Analytics) Lag(ctx context.Context) int64 {
	a.mu.Lock()
	lag, at := a.lag, a.lagAt
	a.mu.Unlock()
	if a.o.Watermarks == nil || time.Since(at) < a.o.LagTTL {
		return lag
	}
	a.lagLock.Lock()
	defer a.lagLock.Unlock()
	a.mu.Lock()
	lag, at = a.lag, a.lagAt
	a.mu.Unlock()
	if time.Since(at) < a.o.LagTTL {
		return lag
	}
	mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	n, err := a.measureLag(mctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		_ = level.Debug(a.o.Logger).Log("msg", "cannot measure the lag; keeping the last known", "err", err)
		a.lagAt = time.Now() // do not hammer a broker that is down
		return a.lag
	}
	a.lag, a.lagAt = n, time.Now()
	return n
}

func (a *Analytics) measureLag(ctx context.Context) (int64, error) {
	marks, err := a.o.Watermarks(ctx, Topics)
	if err != nil {
		return 0, err
	}
	next, err := a.store.NextOffsets(ctx)
	if err != nil {
		return 0, err
	}
	var sum int64
	for p, w := range marks {
		n, ok := next[p]
		if !ok || n < w.Oldest {
			n = w.Oldest
		}
		if d := w.Newest - n; d > 0 {
			sum += d
		}
	}
	return sum, nil
}

// Generation and Reset expose the store's, for the command that starts the consumer.
func (a *Analytics) Generation(ctx context.Context) (string, bool, error) {
	return a.store.Generation(ctx)
}

// Reset empties the figures and starts a new generation (a rebuild).
func (a *Analytics) Reset(ctx context.Context) (string, error) { return a.store.Reset(ctx) }
