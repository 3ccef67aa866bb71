package kafkatransport

import (
	"strconv"
	"strings"
	"time"
)

// CommandsSuffix ends the name of every command topic ("patient.commands").
const CommandsSuffix = ".commands"

// Retention is how long the broker keeps the records of the transient topics: commands,
// replies and dead letters. Every other topic (the event topics and the audit topic) keeps
// every record, because analytics rebuilds its views and audit verifies its checkpoints from
// the first event (issue 20): retention there would lose data, not just memory.
type Retention struct {
	// Commands is how long a command stays on "*.commands": long enough for a consumer that
	// was down over a weekend to catch up, after which the caller has long given up.
	Commands time.Duration
	// Replies is how long a reply stays on "*.replies": callers read theirs within seconds;
	// the rest is room to debug.
	Replies time.Duration
	// DLQ is how long a dead letter stays on "*.dlq": long enough for an operator to notice
	// the alert, read the letter and redrive it after a holiday.
	DLQ time.Duration
}

// DefaultRetention is the production default of Retention.
var DefaultRetention = Retention{Commands: 72 * time.Hour, Replies: 24 * time.Hour, DLQ: 14 * 24 * time.Hour}

// For is the retention of topic: the period of its kind, or 0 (keep every record) for a
// topic that is not a command, reply or dead-letter topic. A dead-letter topic of a command
// topic ("patient.commands.dlq") is a dead-letter topic.
func (r Retention) For(topic string) time.Duration {
	switch {
	case strings.HasSuffix(topic, DLQSuffix):
		return r.DLQ
	case strings.HasSuffix(topic, RepliesSuffix):
		return r.Replies
	case strings.HasSuffix(topic, CommandsSuffix):
		return r.Commands
	}
	return 0
}

// Configs are the topic configs of topic at its creation: retention.ms of its kind, or
// retention.ms=-1 for a topic that keeps every record. The -1 is explicit because Kafka's
// own default (log.retention.hours=168) would otherwise delete week-old events.
func (r Retention) Configs(topic string) map[string]string {
	ms := int64(-1)
	if d := r.For(topic); d > 0 {
		ms = d.Milliseconds()
	}
	return map[string]string{"retention.ms": strconv.FormatInt(ms, 10)}
}

// WithRetention is topics with the configs of r set (Topic.Configs), for EnsureTopics.
func WithRetention(topics []Topic, r Retention) []Topic {
	out := make([]Topic, len(topics))
	for i, t := range topics {
		t.Configs = r.Configs(t.Name)
		out[i] = t
	}
	return out
}
