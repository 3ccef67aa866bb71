package kafkatransport

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// Consumer runs a Subscriber in a consumer group on some topics: it joins (and rejoins after
// a rebalance or an outage) until stopped. It connects lazily and keeps trying while the
// brokers are unreachable, so a service can start before its broker and readiness never
// waits for a group to form.
type Consumer struct {
	brokers []string
	groupID string
	topics  []string
	cfg     *sarama.Config
	sub     *Subscriber
	logger  log.Logger

	ctx    context.Context // ends every session (and a join in progress) when Stop is called
	cancel context.CancelFunc

	stopOnce sync.Once
	stopping chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	state    runState
}

// runState is where a Consumer or Relay is in its life: Stop before Run makes Run a no-op.
type runState int

const (
	idle runState = iota
	running
	stoppedBeforeRun
)

// NewConsumer returns a Consumer of topics in group groupID; Run starts it.
func NewConsumer(brokers []string, groupID string, topics []string, cfg *sarama.Config, sub *Subscriber, logger log.Logger) *Consumer {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	c := &Consumer{
		brokers: brokers, groupID: groupID, topics: topics, cfg: cfg, sub: sub,
		logger:   log.With(logger, "component", "kafka-consumer", "group", groupID),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Run consumes until Stop; it returns nil then. Errors on the way (broker down, rebalance)
// are logged and retried with backoff; they never end Run.
func (c *Consumer) Run() error {
	c.mu.Lock()
	switch c.state {
	case stoppedBeforeRun:
		c.mu.Unlock()
		return nil
	case running:
		c.mu.Unlock()
		return errors.New("kafka: Consumer.Run called twice")
	}
	c.state = running
	c.mu.Unlock()
	defer close(c.done)
	var group sarama.ConsumerGroup
	var errsDone chan struct{}
	defer func() {
		if group != nil {
			if err := group.Close(); err != nil {
				_ = level.Warn(c.logger).Log("msg", "closing consumer group", "err", err)
			}
			<-errsDone
		}
	}()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-c.stopping:
			return nil
		default:
		}
		if group == nil {
			g, err := sarama.NewConsumerGroup(c.brokers, c.groupID, c.cfg)
			if err != nil {
				_ = level.Warn(c.logger).Log("msg", "cannot reach the brokers yet; retrying", "err", err)
				if !c.sleep(&backoff) {
					return nil
				}
				continue
			}
			group = g
			errsDone = make(chan struct{})
			go func() {
				defer close(errsDone)
				for err := range g.Errors() {
					_ = level.Warn(c.logger).Log("msg", "consumer group error", "err", err)
				}
			}()
		}
		err := group.Consume(c.ctx, c.topics, c.sub)
		select {
		case <-c.stopping:
			return nil
		default:
		}
		if err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) {
				return nil
			}
			_ = level.Warn(c.logger).Log("msg", "consume ended; rejoining", "err", err)
			if !c.sleep(&backoff) {
				return nil
			}
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// sleep waits *d (then doubles it, up to 5 s) unless Stop comes first.
func (c *Consumer) sleep(d *time.Duration) bool {
	t := time.NewTimer(*d)
	defer t.Stop()
	*d = min(*d*2, 5*time.Second)
	select {
	case <-t.C:
		return true
	case <-c.stopping:
		return false
	}
}

// Stop ends Run gracefully: the message in hand on each partition finishes (its context is
// not cancelled; each attempt is bounded by the subscriber's timeout) and is marked, a retry
// backoff is cut short (that message stays unmarked and comes back later), no new message is
// taken, marked offsets are committed and the group is left. Stop waits for all of it, so no
// goroutine outlives it; it returns ctx's error if that took longer than ctx allowed.
// Stopping a Consumer that never ran returns at once.
func (c *Consumer) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		close(c.stopping)
		c.sub.Stop()
		c.cancel()
	})
	c.mu.Lock()
	if c.state == idle {
		c.state = stoppedBeforeRun
	}
	st := c.state
	c.mu.Unlock()
	if st == stoppedBeforeRun {
		return nil
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		<-c.done
		return ctx.Err()
	}
}
