package kafkatransport

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a service's Kafka consumer metrics, labelled by topic and consumer group only
// (never keys, ids or contents):
//
//	pms_<service>_kafka_consumed_total{topic,group,result}  result: ok, rejected, dead_lettered
//	pms_<service>_kafka_retries_total{topic,group}
//	pms_<service>_kafka_dead_letters_total{topic,group,reason}  reason: an error kind or "decode"
//	pms_<service>_kafka_consumer_lag{topic,group,partition}
//	pms_<service>_kafka_handle_seconds{topic,group}
//
// A nil *Metrics records nothing.
type Metrics struct {
	consumed    *prometheus.CounterVec
	retries     *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	lag         *prometheus.GaugeVec
	duration    *prometheus.HistogramVec
}

// NewMetrics registers the consumer metrics of service on reg.
func NewMetrics(reg prometheus.Registerer, service string) *Metrics {
	m := &Metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: service, Name: "kafka_consumed_total",
			Help: "Kafka messages consumed and marked, by topic, group and result (ok, rejected, dead_lettered).",
		}, []string{"topic", "group", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: service, Name: "kafka_retries_total",
			Help: "Handler attempts retried after a transient error, by topic and group.",
		}, []string{"topic", "group"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: service, Name: "kafka_dead_letters_total",
			Help: "Messages sent to <topic>.dlq, by topic, group and reason (an error kind, or decode).",
		}, []string{"topic", "group", "reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "pms", Subsystem: service, Name: "kafka_consumer_lag",
			Help: "Messages behind the partition's high-water mark after the last message handled.",
		}, []string{"topic", "group", "partition"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "pms", Subsystem: service, Name: "kafka_handle_seconds",
			Help:    "Time from taking a message to marking it, retries included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"topic", "group"}),
	}
	reg.MustRegister(m.consumed, m.retries, m.deadLetters, m.lag, m.duration)
	return m
}

func (m *Metrics) consumedInc(topic, group, result string) {
	if m != nil {
		m.consumed.WithLabelValues(topic, group, result).Inc()
	}
}

func (m *Metrics) retried(topic, group string) {
	if m != nil {
		m.retries.WithLabelValues(topic, group).Inc()
	}
}

func (m *Metrics) deadLettered(topic, group, reason string) {
	if m != nil {
		m.deadLetters.WithLabelValues(topic, group, reason).Inc()
	}
}

func (m *Metrics) setLag(topic, group string, partition int32, lag int64) {
	if m != nil {
		if lag < 0 {
			lag = 0
		}
		m.lag.WithLabelValues(topic, group, strconv.Itoa(int(partition))).Set(float64(lag))
	}
}

func (m *Metrics) observe(topic, group string, seconds float64) {
	if m != nil {
		m.duration.WithLabelValues(topic, group).Observe(seconds)
	}
}
