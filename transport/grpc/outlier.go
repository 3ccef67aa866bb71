package grpctransport

import (
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// OutlierPolicy is the load-balancing policy Dial gives an upstream with replicas: calls go
// round-robin to the replicas that are connected and whose gRPC health check says SERVING,
// and a replica that fails OutlierFailures calls in a row with unavailable or a deadline
// (it is up, but cannot serve: its database is gone, it is overloaded) is left out for
// OutlierEjection, so one bad replica costs a few calls rather than the whole upstream's
// breaker (issue 20 item 5). When every replica is left out, calls go to all of them again:
// the upstream's breaker is then the one to decide. grpc-go's own outlier detection is
// internal to its xDS support, and counts every error (a not_found too) against a replica.
const OutlierPolicy = "pms_outlier_round_robin"

// OutlierFailures and OutlierEjection tune OutlierPolicy.
const (
	OutlierFailures = 5
	OutlierEjection = 10 * time.Second
)

func init() {
	balancer.Register(outlierBuilder{})
}

// outlierBuilder builds, for each connection, grpc-go's base balancer (one SubConn per
// address, client health checks) with a picker builder of its own, so each connection keeps
// its replicas' counts apart.
type outlierBuilder struct{}

func (outlierBuilder) Name() string { return OutlierPolicy }

func (outlierBuilder) Build(cc balancer.ClientConn, o balancer.BuildOptions) balancer.Balancer {
	pb := &outlierPickers{stats: map[balancer.SubConn]*replicaStats{}, now: time.Now}
	return base.NewBalancerBuilder(OutlierPolicy, pb, base.Config{HealthCheck: true}).Build(cc, o)
}

// outlierPickers builds the pickers of one connection and keeps each replica's record
// across them (a picker is rebuilt whenever a replica's state changes).
type outlierPickers struct {
	mu    sync.Mutex
	stats map[balancer.SubConn]*replicaStats
	now   func() time.Time
}

// Build implements base.PickerBuilder. A replica that left the ready set loses its record: it
// comes back with a fresh connection and a clean slate.
func (b *outlierPickers) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := &outlierPicker{now: b.now}
	kept := make(map[balancer.SubConn]*replicaStats, len(info.ReadySCs))
	for sc := range info.ReadySCs {
		st := b.stats[sc]
		if st == nil {
			st = &replicaStats{now: b.now}
		}
		kept[sc] = st
		p.replicas = append(p.replicas, pickable{sc, st})
	}
	b.stats = kept
	return p
}

type pickable struct {
	sc    balancer.SubConn
	stats *replicaStats
}

// outlierPicker picks round-robin among the ready replicas not left out.
type outlierPicker struct {
	replicas []pickable
	next     atomic.Uint32
	now      func() time.Time
}

func (p *outlierPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	n := uint32(len(p.replicas))
	start := p.next.Add(1)
	now := p.now()
	for i := range n {
		r := p.replicas[(start+i)%n]
		if !r.stats.ejected(now) {
			return balancer.PickResult{SubConn: r.sc, Done: r.stats.done}, nil
		}
	}
	r := p.replicas[start%n] // every one left out: all of them rather than none
	return balancer.PickResult{SubConn: r.sc, Done: r.stats.done}, nil
}

// replicaStats is one replica's run of failed calls and how long it is left out.
type replicaStats struct {
	mu     sync.Mutex
	failed int
	until  time.Time
	now    func() time.Time
}

func (s *replicaStats) ejected(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Before(s.until)
}

// done records a finished call: unavailable and deadline-exceeded are the replica failing;
// any answer of the service (a not_found, a refusal) is the replica working; a call its
// caller cancelled says nothing.
func (s *replicaStats) done(info balancer.DoneInfo) {
	code := status.Code(info.Err)
	if code == codes.Canceled {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if code != codes.Unavailable && code != codes.DeadlineExceeded {
		s.failed = 0
		return
	}
	s.failed++
	if s.failed >= OutlierFailures {
		s.failed = 0
		s.until = s.now().Add(OutlierEjection)
	}
}
