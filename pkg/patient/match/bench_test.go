package match

import "testing"

// BenchmarkCompare is the cost of scoring one candidate pair, both records prepared once
// (as the service does for the record being registered) and prepared per call (a candidate
// read from the database).
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
	b.Run("unprepared", func(b *testing.B) {
		for b.Loop() {
			m.Compare(x, y)
		}
	})
}
