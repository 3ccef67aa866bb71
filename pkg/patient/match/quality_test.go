package match

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"
)

// quality is the outcome of matching a generated population through its blocking keys.
type quality struct {
	records, truePairs, blockedMissed, compared int
	maxBlock                                    int
	tp, fp, fn                                  int
	nsPerPair                                   float64
	sweep                                       map[float64][3]int // threshold → tp, fp, fn
	falseNeg, falsePos                          []string
}

func (q quality) precision() float64 { return float64(q.tp) / float64(max(1, q.tp+q.fp)) }
func (q quality) recall() float64    { return float64(q.tp) / float64(max(1, q.truePairs)) }
func (q quality) f1() float64 {
	p, r := q.precision(), q.recall()
	return 2 * p * r / max(1e-9, p+r)
}

// sweepThresholds are the thresholds evaluate reports besides the matcher's own.
var sweepThresholds = []float64{0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}

// evaluate generates n records with dupPct duplicates from seed, finds candidates through
// Keys exactly as the service does (an index from key to records), scores every candidate
// pair once, and counts against the generator's truth.
func evaluate(n int, dupPct float64, seed uint64, samples int) quality {
	ps, truth := Generate(rand.New(rand.NewPCG(seed, 19)), n, dupPct)
	m := New(Config{IgnoredSystems: []string{SynthMRNSystem}})
	prep := make([]prepared, len(ps))
	index := map[string][]int{}
	for i, p := range ps {
		prep[i] = m.prepare(p)
		for _, k := range m.Keys(p) {
			index[k] = append(index[k], i)
		}
	}
	q := quality{records: n, sweep: map[float64][3]int{}}
	byEntity := map[int]int{}
	for _, e := range truth.Entity {
		byEntity[e]++
	}
	for _, c := range byEntity {
		q.truePairs += c * (c - 1) / 2
	}
	for _, l := range index {
		q.maxBlock = max(q.maxBlock, len(l))
	}
	seen := make([]int, len(ps)) // stamp: seen[j] == i+1 when j is already a candidate of i
	var spent time.Duration
	var tpBlocked int
	for i, p := range ps {
		var cands []int
		for _, k := range m.Keys(p) {
			for _, j := range index[k] {
				if j > i && seen[j] != i+1 {
					seen[j] = i + 1
					cands = append(cands, j)
				}
			}
		}
		start := time.Now()
		results := make([]Result, len(cands))
		for x, j := range cands {
			results[x] = compare(prep[i], prep[j])
		}
		spent += time.Since(start)
		q.compared += len(cands)
		for x, j := range cands {
			same, r := truth.SamePerson(i, j), results[x]
			if same {
				tpBlocked++
			}
			for _, t := range sweepThresholds {
				s := q.sweep[t]
				if r.Score >= t && same {
					s[0]++
				} else if r.Score >= t {
					s[1]++
				}
				q.sweep[t] = s
			}
			switch {
			case r.Score >= m.Threshold() && same:
				q.tp++
			case r.Score >= m.Threshold():
				q.fp++
				q.falsePos = append(q.falsePos, describe(ps[i], ps[j], r, nil))
			case same:
				q.falseNeg = append(q.falseNeg, describe(ps[i], ps[j], r, append(truth.Kinds[i], truth.Kinds[j]...)))
			}
		}
	}
	q.blockedMissed = q.truePairs - tpBlocked
	q.fn = q.truePairs - q.tp
	for t, s := range q.sweep {
		s[2] = q.truePairs - s[0]
		q.sweep[t] = s
	}
	q.nsPerPair = float64(spent.Nanoseconds()) / float64(max(1, q.compared))
	rng := rand.New(rand.NewPCG(seed, 7))
	rng.Shuffle(len(q.falseNeg), func(i, j int) { q.falseNeg[i], q.falseNeg[j] = q.falseNeg[j], q.falseNeg[i] })
	rng.Shuffle(len(q.falsePos), func(i, j int) { q.falsePos[i], q.falsePos[j] = q.falsePos[j], q.falsePos[i] })
	q.falseNeg = q.falseNeg[:min(samples, len(q.falseNeg))]
	q.falsePos = q.falsePos[:min(samples, len(q.falsePos))]
	return q
}

// describe renders a pair and its reasons for the list of misses.
func describe(a, b Person, r Result, kinds []string) string {
	show := func(p Person) string {
		name := p.Name
		if name == "" {
			name = strings.Join(p.Given, " ") + " / " + p.Family
		}
		return fmt.Sprintf("%s, %s, %s, %s", name, p.DateOfBirth, p.Phone, p.Email)
	}
	var rs []string
	for _, x := range r.Reasons {
		rs = append(rs, fmt.Sprintf("%s=%s(%+g)", x.Field, x.Level, x.Weight))
	}
	s := fmt.Sprintf("score %.3f\n      %s\n      %s\n      %s", r.Score, show(a), show(b), strings.Join(rs, " "))
	if len(kinds) > 0 {
		s += "\n      injected: " + strings.Join(kinds, ", ")
	}
	return s
}

// report prints the figures of q.
func report(logf func(string, ...any), q quality) {
	logf("records %d, true pairs %d, missed by blocking %d (%.2f%%), pairs compared %d (%.1f per record), largest block %d",
		q.records, q.truePairs, q.blockedMissed, 100*float64(q.blockedMissed)/float64(max(1, q.truePairs)), q.compared,
		float64(q.compared)/float64(q.records), q.maxBlock)
	logf("threshold %.2f: precision %.4f recall %.4f F1 %.4f (tp %d, fp %d, fn %d); %.0f ns per scored pair",
		DefaultThreshold, q.precision(), q.recall(), q.f1(), q.tp, q.fp, q.fn, q.nsPerPair)
	ts := make([]float64, 0, len(q.sweep))
	for t := range q.sweep {
		ts = append(ts, t)
	}
	sort.Float64s(ts)
	for _, t := range ts {
		s := q.sweep[t]
		p, r := float64(s[0])/float64(max(1, s[0]+s[1])), float64(s[0])/float64(max(1, q.truePairs))
		logf("  sweep threshold %.1f: precision %.4f recall %.4f (fp %d, fn %d)", t, p, r, s[1], s[2])
	}
	for _, s := range q.falseNeg {
		logf("  false negative %s", s)
	}
	for _, s := range q.falsePos {
		logf("  false positive %s", s)
	}
}

// TestMatchQuality holds the matcher to the target on 10,000 synthetic patients with
// 5% duplicates, for three seeds: recall ≥ 0.95 at precision ≥ 0.90, and blocking losing
// under 1% of the true pairs. -v prints the figures and a sample of the misses.
func TestMatchQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 records")
	}
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			q := evaluate(10000, 5, seed, 5)
			report(t.Logf, q)
			if q.recall() < 0.95 || q.precision() < 0.90 {
				t.Errorf("recall %.4f precision %.4f, want ≥ 0.95 and ≥ 0.90", q.recall(), q.precision())
			}
			if float64(q.blockedMissed) > 0.01*float64(q.truePairs) {
				t.Errorf("blocking lost %d of %d true pairs", q.blockedMissed, q.truePairs)
			}
		})
	}
}

// BenchmarkMatchQuality prints precision, recall and F1 at the default threshold on 10,000
// patients with 5% duplicates, the true pairs blocking missed, the pairs compared, the cost of
// one scored pair and a sample of misses with their reasons (go test -bench MatchQuality
// -run '^$' ./pkg/patient/match/).
func BenchmarkMatchQuality(b *testing.B) {
	var q quality
	for b.Loop() {
		q = evaluate(10000, 5, 1, 10)
	}
	report(func(f string, a ...any) { fmt.Printf(f+"\n", a...) }, q)
	b.ReportMetric(q.precision(), "precision")
	b.ReportMetric(q.recall(), "recall")
	b.ReportMetric(q.f1(), "F1")
	b.ReportMetric(float64(q.blockedMissed), "blocking-missed")
	b.ReportMetric(float64(q.compared), "pairs")
	b.ReportMetric(q.nsPerPair, "ns/pair")
}
