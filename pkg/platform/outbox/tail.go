package outbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/IBM/sarama"
)

// Tail is a table whose rows are events already, in an order that is their commit order (a
// sequence number that a later transaction can only draw after the one before it has
// committed, as the audit chain's writers take turns under one lock). The relay publishes a
// tail from a position it keeps rather than from outbox rows: an event costs the service no
// second row and no mark, only the position's update once per batch (issue 20 item 2: the
// outbox row and the mark were two of the seven row writes of an audited read).
//
// Fetch, Position and Advance run inside the relay's round (its transaction on PostgreSQL,
// under the lock that keeps one relay per schema active), so a position is only ever moved
// by the relay that published what it covers. A position lost to a crash publishes its events
// again, with their event ids: consumers deduplicate, as they do for outbox rows.
type Tail interface {
	// Position returns the position of the last row published.
	Position(ctx context.Context, q Queryer) (int64, error)
	// Fetch returns up to limit messages of the rows after position after, in order, each
	// message's Metadata set to its row's position (an int64).
	Fetch(ctx context.Context, q Queryer, after int64, limit int) ([]*sarama.ProducerMessage, error)
	// Advance stores to as the position of the last row published.
	Advance(ctx context.Context, q Queryer, to int64) error
	// Backlog returns how many rows wait after the position (Relay.Backlog adds it).
	Backlog(ctx context.Context, q Queryer) (int64, error)
	// Oldest returns when the first row after the position was written (zero when none
	// waits): the relay's oldest-age gauge takes the oldest of the outbox and its tails.
	Oldest(ctx context.Context, q Queryer) (time.Time, error)
}

// ProducerMessage is m as the relay sends an outbox row (key, headers in the order the row
// stores them), with metadata: what a Tail's Fetch returns for its events.
func (m Message) ProducerMessage(metadata any) *sarama.ProducerMessage {
	h := make([]sarama.RecordHeader, 0, len(m.Headers))
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		h = append(h, sarama.RecordHeader{Key: []byte(k), Value: []byte(m.Headers[k])})
	}
	return producerMessage(m.Topic, m.Key, m.Value, h, metadata)
}

// publishTails publishes every tail's rows after its position, up to maxBatchesPerRound
// batches each, and advances the positions past what the broker acknowledged. more reports
// that a tail's last read was a full batch.
func (r *Relay) publishTails(ctx context.Context, q Queryer) (more bool, err error) {
	for _, t := range r.o.Tails {
		m, err := r.publishTail(ctx, q, t)
		if err != nil {
			return false, err
		}
		more = more || m
	}
	return more, nil
}

func (r *Relay) publishTail(ctx context.Context, q Queryer, t Tail) (more bool, err error) {
	pos, err := t.Position(ctx, q)
	if err != nil {
		return false, err
	}
	start := pos
	defer func() {
		if pos > start {
			// What the broker acknowledged is kept even when a later batch failed.
			err = errors.Join(err, t.Advance(ctx, q, pos))
		}
	}()
	for batch := 0; batch < maxBatchesPerRound; batch++ {
		msgs, err := t.Fetch(ctx, q, pos, r.o.Batch)
		if err != nil || len(msgs) == 0 {
			return false, err
		}
		more = len(msgs) == r.o.Batch
		if err := r.ensureProducer(); err != nil {
			return more, err
		}
		sendErr := r.producer.SendMessages(msgs)
		acked := firstUnacked(msgs, sendErr)
		if acked > 0 {
			pos = msgs[acked-1].Metadata.(int64)
		}
		r.published.Add(int64(acked))
		r.m.published.Add(float64(acked))
		r.m.batch.Observe(float64(len(msgs)))
		if sendErr != nil {
			r.closeProducer()
			return more, fmt.Errorf("outbox: %w: %w", errNotAcked, firstError(sendErr))
		}
		if !more {
			return false, nil
		}
	}
	return more, nil
}

// ensureProducer makes the relay's producer if it has none (after a failed round).
func (r *Relay) ensureProducer() error {
	if r.producer != nil {
		return nil
	}
	p, err := r.o.NewProducer()
	if err != nil {
		return fmt.Errorf("outbox: producer: %w", err)
	}
	r.producer = p
	return nil
}
