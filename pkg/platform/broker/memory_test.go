package broker

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// BenchmarkRetainedBytes measures the embedded broker's memory per retained record (issue 20:
// the broker holds every record in memory, so its growth is records × this): b.N records of a
// typical event's size (400 bytes, a 36-byte key) produced over TCP in batches of 100, then
// the live heap after a GC compared with the heap before, per record. The client is closed
// before the second reading, so what stays is the broker's. "kept" is a topic without
// retention (an event topic); "expired" a topic whose records all passed their retention
// before the reading (ApplyRetention): what a pass gives back.
func BenchmarkRetainedBytes(b *testing.B) {
	b.Run("kept", func(b *testing.B) { benchRetained(b, "-1") })
	b.Run("expired", func(b *testing.B) { benchRetained(b, "1") })
}

func benchRetained(b *testing.B, retentionMs string) {
	br, err := Start(Options{Addr: "127.0.0.1:0", Partitions: 1, Topics: []string{"bench"}, RetentionCheck: time.Hour,
		TopicConfigs: func(string) map[string]string { return map[string]string{"retention.ms": retentionMs} }})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	cfg := config()
	cfg.Producer.Idempotent = false
	cfg.Net.MaxOpenRequests = 5
	p, err := sarama.NewSyncProducer([]string{br.Addr()}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	value := sarama.StringEncoder(strings.Repeat("x", 400))
	key := sarama.StringEncoder(strings.Repeat("k", 36))
	// Warm up: the topic, the connection, the first segment.
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "bench", Key: key, Value: value}); err != nil {
		b.Fatal(err)
	}
	before := liveHeap()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		n := min(100, b.N-sent)
		msgs := make([]*sarama.ProducerMessage, n)
		for i := range msgs {
			msgs[i] = &sarama.ProducerMessage{Topic: "bench", Key: key, Value: value}
		}
		if err := p.SendMessages(msgs); err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	b.StopTimer()
	_ = p.Close()
	if retentionMs != "-1" {
		time.Sleep(2 * time.Millisecond) // let the last batch pass its 1 ms retention
		br.ApplyRetention()
	}
	after := liveHeap()
	b.ReportMetric(float64(int64(after)-int64(before))/float64(b.N), "heap-B/record")
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
