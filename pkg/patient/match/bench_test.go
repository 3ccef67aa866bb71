package match

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// BenchmarkCompare is the cost of scoring one candidate pair: both records prepared once,
// one prepared once (a Probe: the service's registration against each candidate read from
// the database) and both prepared per call (Matcher.Compare).
func BenchmarkCompare(b *testing.B) {
	m := New(Config{})
	x := Person{Family: "Müller", Given: []string{"Robert", "James"}, Gender: "male", DateOfBirth: "1980-03-04",
		Phone: "+49 170 1234567", Email: "r.mueller@example.com", Address: "12 Hauptstraße, 50667 Köln",
		Identifiers: []Identifier{{System: SynthNationalIDSystem, Value: "NI123456789"}}}
	y := Person{Family: "Mueller", Given: []string{"Bob"}, Gender: "male", DateOfBirth: "1980-04-03",
		Phone: "01701234567", Email: "bob@example.com", Address: "12 Hauptstrasse, 50667 Koeln"}
	b.Run("prepared", func(b *testing.B) {
		px, py := m.prepare(x), m.prepare(y)
		for b.Loop() {
			compare(px, py)
		}
	})
	b.Run("probe", func(b *testing.B) {
		p := m.Probe(x)
		for b.Loop() {
			p.Compare(y)
		}
	})
	b.Run("unprepared", func(b *testing.B) {
		for b.Loop() {
			m.Compare(x, y)
		}
	})
}

// BenchmarkBlocking100k prints what blocking costs the service at the 100,000
// patients: candidates fetched per registration (mean, p99, max) and the largest block, the
// figures that bound the database work of one duplicate check.
func BenchmarkBlocking100k(b *testing.B) {
	for b.Loop() {
		ps, _ := Generate(rand.New(rand.NewPCG(1, 19)), 100000, 5)
		m := New(Config{IgnoredSystems: []string{SynthMRNSystem}})
		keys := make([][]string, len(ps))
		index := map[string]int{}
		for i, p := range ps {
			keys[i] = m.Keys(p)
			for _, k := range keys[i] {
				index[k]++
			}
		}
		largest, largestKind := 0, ""
		for k, n := range index {
			if n > largest {
				largest, largestKind = n, k[:2]
			}
		}
		cands := make([]int, len(ps)) // upper bound: block sizes summed, overlaps counted twice
		total := 0
		for i := range ps {
			for _, k := range keys[i] {
				cands[i] += index[k] - 1
			}
			total += cands[i]
		}
		slices.Sort(cands)
		fmt.Printf("100,000 records: %d distinct keys, candidates per registration mean %.1f p99 %d max %d (upper bound), largest block %d (kind %s)\n",
			len(index), float64(total)/float64(len(ps)), cands[len(cands)*99/100], cands[len(cands)-1], largest, largestKind)
	}
}
