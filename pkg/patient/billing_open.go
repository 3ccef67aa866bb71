package patient

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// DefaultAccountQueue bounds the registrations whose billing account waits to be opened in
// the background; DefaultAccountWorkers is how many are opened at once. Beyond the queue an
// account is left to the patient topic's consumer, so a slow or absent billing service never
// holds memory or a registration (issue 20 item 4).
const (
	DefaultAccountQueue   = 4096
	DefaultAccountWorkers = 4
)

// accountOpener opens the billing account of a patient just registered after the
// registration has answered: it is off the request's critical path (docs/billing.md,
// "Accounts"). Billing's consumer of the patient topic opens the same account again,
// idempotently, so a call dropped here (queue full, billing down, process stopped) still ends
// with one account. A billing read of the patient through this service waits for the open
// still in flight for it, so reading the account right after the 201 finds it.
type accountOpener struct {
	billing Billing
	timeout time.Duration
	log     log.Logger
	max     int64
	workers chan struct{}
	pending atomic.Int64

	mu       sync.Mutex
	inflight map[string]chan struct{} // patient id → closed once its open ended
}

func newAccountOpener(b Billing, timeout time.Duration, logger log.Logger, queue, workers int) *accountOpener {
	if queue <= 0 {
		queue = DefaultAccountQueue
	}
	if workers <= 0 {
		workers = DefaultAccountWorkers
	}
	return &accountOpener{billing: b, timeout: timeout, log: logger, max: int64(queue),
		workers: make(chan struct{}, workers), inflight: map[string]chan struct{}{}}
}

// open queues the opening of p's account and returns at once. The call runs on a context
// detached from the caller's cancellation (the caller's identity and request id stay), within
// its own timeout counted from when a worker takes it.
func (o *accountOpener) open(ctx context.Context, p Patient) {
	if o == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if o.pending.Add(1) > o.max {
		o.pending.Add(-1)
		_ = level.Warn(o.log).Log("msg", "billing account queue full; the patient topic will open it",
			"patient_id", p.ID, "request_id", observe.RequestID(ctx))
		return
	}
	done := make(chan struct{})
	o.mu.Lock()
	prev := o.inflight[p.ID]
	o.inflight[p.ID] = done
	o.mu.Unlock()
	go func() {
		defer func() {
			o.mu.Lock()
			if o.inflight[p.ID] == done {
				delete(o.inflight, p.ID)
			}
			o.mu.Unlock()
			close(done)
			o.pending.Add(-1)
		}()
		if prev != nil {
			<-prev // a replay's open follows the first one's
		}
		o.workers <- struct{}{}
		defer func() { <-o.workers }()
		cctx, cancel := context.WithTimeout(ctx, o.timeout)
		defer cancel()
		if _, err := o.billing.CreateAccount(cctx, p.ID, p.Name, p.Email); err != nil {
			_ = level.Warn(o.log).Log("msg", "billing account not opened; the patient topic will open it",
				"patient_id", p.ID, "request_id", observe.RequestID(ctx), "error", string(errs.KindOf(err)))
		}
	}()
}

// wait returns once no open of patient id's account is in flight here, or ctx ended.
func (o *accountOpener) wait(ctx context.Context, id string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	done := o.inflight[id]
	o.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}
