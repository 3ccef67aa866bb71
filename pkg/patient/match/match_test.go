package match

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// level returns the level Compare gave field, or "" when it gave none.
func level(r Result, field string) string {
	for _, x := range r.Reasons {
		if x.Field == field {
			return x.Level
		}
	}
	return ""
}

var base = Person{Family: "Müller", Given: []string{"Robert", "James"}, Gender: "male", DateOfBirth: "1980-03-04",
	Phone: "+49 170 1234567", Email: "R.Mueller@Example.com", Address: "12 Hauptstraße, 50667 Köln",
	Identifiers: []Identifier{{System: SynthNationalIDSystem, Value: "NI 123-456"}}}

// with returns a copy of base changed by f.
func with(f func(p *Person)) Person {
	p := base
	p.Given = slices.Clone(base.Given)
	p.Identifiers = slices.Clone(base.Identifiers)
	f(&p)
	return p
}

// TestRules checks each scoring rule on a pair that differs from base in one field only:
// the level found, and that the pair still matches (or no longer does) as the rule says.
func TestRules(t *testing.T) {
	m := New(Config{})
	cases := []struct {
		name, field, level string
		p                  Person
		match              bool
	}{
		{"identical", "family", "exact", base, true},
		{"umlaut spelt out", "family", "exact", with(func(p *Person) { p.Family = "Mueller" }), true},
		{"umlaut dropped", "family", "exact", with(func(p *Person) { p.Family = "Muller" }), true},
		{"family typo", "family", "close", with(func(p *Person) { p.Family = "Müllre" }), true},
		{"family changed", "family", "different", with(func(p *Person) { p.Family = "Schmidt" }), true},
		{"nickname", "given", "nickname", with(func(p *Person) { p.Given = []string{"Bob"} }), true},
		{"given typo", "given", "close", with(func(p *Person) { p.Given[0] = "Robret" }), true},
		{"middle name missing", "given", "exact", with(func(p *Person) { p.Given = p.Given[:1] }), true},
		{"middle name used", "given", "exact", with(func(p *Person) { p.Given = []string{"James"} }), true},
		{"given initial", "given", "initial", with(func(p *Person) { p.Given = []string{"R"} }), true},
		{"given different", "given", "different", with(func(p *Person) { p.Given, p.Identifiers = []string{"Thomas"}, nil }), false},
		{"names swapped", "names", "swapped", with(func(p *Person) { p.Family, p.Given = "Robert", []string{"Müller"} }), true},
		{"display name only", "given", "exact", with(func(p *Person) { p.Family, p.Given, p.Name = "", nil, "Robert James Müller" }), true},
		{"dob swapped", "dob", "swapped", with(func(p *Person) { p.DateOfBirth = "1980-04-03" }), true},
		{"dob one digit", "dob", "typo", with(func(p *Person) { p.DateOfBirth = "1981-03-04" }), true},
		{"dob same year-month", "dob", "year-month", with(func(p *Person) { p.DateOfBirth = "1980-03-25" }), true},
		{"dob different", "dob", "different", with(func(p *Person) { p.DateOfBirth, p.Identifiers = "1955-11-20", nil }), false},
		{"dob unreadable", "dob", "missing", with(func(p *Person) { p.DateOfBirth = "04/03/1980" }), true},
		{"phone national format", "phone", "exact", with(func(p *Person) { p.Phone = "0170 123 4567" }), true},
		{"phone different", "phone", "different", with(func(p *Person) { p.Phone = "0170 999 8888" }), true},
		{"email case", "email", "exact", with(func(p *Person) { p.Email = "r.mueller@example.COM" }), true},
		{"email dots matter", "email", "different", with(func(p *Person) { p.Email = "rmueller@example.com" }), true},
		{"identifier same, typed differently", "identifier", "exact", with(func(p *Person) { p.Identifiers[0].Value = "ni123456" }), true},
		// With every other field agreeing, a conflicting identifier lowers the score but does not
		// veto (a mistyped id); TestIdentifierDecides shows it vetoing names and date alone.
		{"identifier conflict", "identifier", "conflict", with(func(p *Person) { p.Identifiers[0].Value = "NI999999" }), true},
		{"identifier other system", "identifier", "missing", with(func(p *Person) { p.Identifiers[0].System = "urn:other" }), true},
		{"gender different", "gender", "different", with(func(p *Person) { p.Gender = "female" }), true},
		{"address abbreviated", "address", "partial", with(func(p *Person) { p.Address = "12 Hauptstraße, Köln" }), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ok := m.Match(base, c.p)
			if got := level(r, c.field); got != c.level {
				t.Errorf("%s level %q, want %q (%+v)", c.field, got, c.level, r.Reasons)
			}
			if ok != c.match {
				t.Errorf("match %v (score %.3f), want %v (%+v)", ok, r.Score, c.match, r.Reasons)
			}
			r2 := m.Compare(c.p, base)
			if r2.Score != r.Score {
				t.Errorf("not symmetric: %.4f one way, %.4f the other", r.Score, r2.Score)
			}
		})
	}
}

// TestIdentifierDecides: an identifier shared outright makes a pair near certain even when
// everything else is missing; a conflicting one keeps apart records that agree on the rest.
func TestIdentifierDecides(t *testing.T) {
	m := New(Config{})
	id := []Identifier{{System: "urn:x", Value: "1"}}
	if r := m.Compare(Person{Identifiers: id}, Person{Identifiers: id}); r.Score < 0.9 {
		t.Errorf("shared identifier score %.3f", r.Score)
	}
	a := with(func(p *Person) { p.Identifiers = []Identifier{{System: "urn:x", Value: "1"}} })
	b := with(func(p *Person) { p.Identifiers = []Identifier{{System: "urn:x", Value: "2"}} })
	b.Phone, b.Email, b.DateOfBirth = "", "", "1980-03-05"
	if _, ok := m.Match(a, b); ok {
		t.Error("conflicting identifier still matched")
	}
}

// TestIgnoredSystems: the platform's MRN differs between two registrations of one person,
// so a system listed in IgnoredSystems is neither evidence nor a blocking key.
func TestIgnoredSystems(t *testing.T) {
	a := with(func(p *Person) { p.Identifiers = []Identifier{{System: SynthMRNSystem, Value: "MRN1"}} })
	b := with(func(p *Person) { p.Identifiers = []Identifier{{System: SynthMRNSystem, Value: "MRN2"}} })
	if l := level(New(Config{}).Compare(a, b), "identifier"); l != "conflict" {
		t.Fatalf("without the setting: %q", l)
	}
	m := New(Config{IgnoredSystems: []string{" HTTPS://pms.example/MRN "}})
	if l := level(m.Compare(a, b), "identifier"); l != "missing" {
		t.Errorf("ignored system compared: %q", l)
	}
	for _, k := range m.Keys(a) {
		if strings.HasPrefix(k, "i:") {
			t.Errorf("ignored system keyed: %s", k)
		}
	}
}

// TestHousehold: twins share family name, date of birth, address, phone and email; only
// their given names differ, and that must keep them apart (contacts weigh nothing then).
// A father and son of one name and address are kept apart by their dates of birth.
func TestHousehold(t *testing.T) {
	m := New(Config{})
	twin := with(func(p *Person) { p.Given = []string{"Thomas"}; p.Identifiers = nil })
	if r, ok := m.Match(base, twin); ok || !strings.HasSuffix(level(r, "phone"), "-household") {
		t.Errorf("twins matched: %.3f %+v", r.Score, r.Reasons)
	}
	son := with(func(p *Person) { p.DateOfBirth = "2008-09-30"; p.Identifiers = nil })
	if r, ok := m.Match(base, son); ok {
		t.Errorf("father and son matched: %.3f %+v", r.Score, r.Reasons)
	}
}

// TestTransliteration: one name written in Cyrillic, Greek and several romanisations meets
// itself, and the comparison spelling folds the usual variants.
func TestTransliteration(t *testing.T) {
	same := [][]string{
		{"Müller", "Mueller", "Muller", "MÜLLER"},
		{"Юрий", "Yuriy", "Yury", "Iurii"},
		{"Александр", "Aleksandr", "Alexandr"},
		{"Щербаков", "Shcherbakov", "Sherbakov"},
		{"Владимир", "Vladimir", "Wladimir"},
		{"Γεώργιος", "Georgios"},
		{"Strauß", "Strauss"},
		{"José", "Jose"},
		{"Łukasz", "Lukasz"},
		{"Yılmaz", "Yilmaz"},
	}
	for _, group := range same {
		want := nameTokens(group[0])
		for _, v := range group[1:] {
			if got := nameTokens(v); !reflect.DeepEqual(got, want) {
				t.Errorf("%s → %v, %s → %v", group[0], want, v, got)
			}
		}
	}
	if reflect.DeepEqual(nameTokens("Jing"), nameTokens("Ying")) {
		t.Error("Jing and Ying folded together")
	}
}

// TestNicknames checks table entries across languages.
func TestNicknames(t *testing.T) {
	for _, p := range [][2]string{{"Bob", "Robert"}, {"Bill", "William"}, {"Liz", "Elizabeth"}, {"Sasha", "Alexander"},
		{"Саша", "Александр"}, {"Pepe", "José"}, {"Paco", "Francisco"}, {"Mohamed", "Muhammad"}, {"Peggy", "Margaret"}} {
		a, b := nameTokens(p[0]), nameTokens(p[1])
		if !nicknames(a[0], b[0]) {
			t.Errorf("%s and %s not nicknames", p[0], p[1])
		}
	}
	if nicknames("robert", "thomas") {
		t.Error("robert and thomas are nicknames")
	}
}

// TestKeys: the keys a duplicate shares with its original for each kind of perturbation
// blocking must survive, and none for an unrelated person.
func TestKeys(t *testing.T) {
	shares := func(a, b Person) bool {
		kb := Keys(b)
		for _, k := range Keys(a) {
			if slices.Contains(kb, k) {
				return true
			}
		}
		return false
	}
	bare := func(f func(p *Person)) Person { // no contacts, no identifiers: names and dates only
		return with(func(p *Person) { p.Phone, p.Email, p.Identifiers = "", "", nil; f(p) })
	}
	for name, p := range map[string]Person{
		"transliterated": bare(func(p *Person) { p.Family = "Muller" }),
		"swapped dob":    bare(func(p *Person) { p.DateOfBirth = "1980-04-03" }),
		"swapped names":  bare(func(p *Person) { p.Family, p.Given = "Robert", []string{"Müller"} }),
		"married, year mistyped": bare(func(p *Person) {
			p.Family, p.DateOfBirth = "Schmidt", "1981-03-04"
		}),
		"no dob, nickname": bare(func(p *Person) { p.DateOfBirth, p.Given = "", []string{"Bob"} }),
	} {
		orig := base
		if p.DateOfBirth == "" {
			orig = with(func(q *Person) { q.DateOfBirth = "" })
		}
		if !shares(orig, p) {
			t.Errorf("%s: no shared key (%v / %v)", name, Keys(orig), Keys(p))
		}
	}
	stranger := Person{Family: "Tanaka", Given: []string{"Yuko"}, DateOfBirth: "1990-10-10", Phone: "0301111111"}
	if shares(base, stranger) {
		t.Errorf("stranger shares a key: %v / %v", Keys(base), Keys(stranger))
	}
}

// TestGenerateDeterministic: one seed, one population; Truth marks the injected share.
func TestGenerateDeterministic(t *testing.T) {
	a, ta := Generate(rand.New(rand.NewPCG(9, 9)), 500, 10)
	b, tb := Generate(rand.New(rand.NewPCG(9, 9)), 500, 10)
	if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(ta, tb) {
		t.Fatal("same seed, different population")
	}
	if len(a) != 500 {
		t.Fatalf("%d records", len(a))
	}
	dups := 0
	for _, k := range ta.Kinds {
		if len(k) > 0 {
			dups++
		}
	}
	if dups != 50 {
		t.Errorf("%d duplicates, want 50", dups)
	}
	if p, tr := Generate(rand.New(rand.NewPCG(1, 1)), 0, 5); p != nil || tr.Entity != nil {
		t.Error("n = 0 produced records")
	}
}

// TestHostileInput: empty, huge, invalid UTF-8, control characters and odd dates never
// panic, always give a score in [0,1], and huge fields cost no more than small ones
// (the caps bound the work; checked by the allocation count, not the clock).
func TestHostileInput(t *testing.T) {
	huge := strings.Repeat("Ж\xffé", 200000)
	odd := []string{"", " ", "\x00", "\xff\xfe", huge, "0000-00-00", "2020-13-45", "9999-99-99", "1980-02-31",
		"-1980-01-01", "１９８０-０１-０１", "1980-1-1", "1980-01-01T00:00:00Z", "\u202e\u200b", strings.Repeat("@", 1000)}
	m := New(Config{Threshold: -1})
	if m.Threshold() != DefaultThreshold {
		t.Errorf("threshold %v for -1", m.Threshold())
	}
	var people []Person
	for _, s := range odd {
		people = append(people, Person{Family: s, Given: []string{s, s}, Name: s, Gender: s, DateOfBirth: s, Phone: s,
			Email: s, Address: s, Identifiers: []Identifier{{System: s, Value: s}}})
	}
	people = append(people, Person{}, Person{Given: make([]string, 10000)}, Person{Identifiers: make([]Identifier, 10000)}, base)
	for _, a := range people {
		for _, b := range people {
			r := m.Compare(a, b)
			if r.Score < 0 || r.Score > 1 || r.Score != r.Score {
				t.Fatalf("score %v", r.Score)
			}
			_ = Keys(a)
		}
	}
	big := Person{Family: huge, Given: []string{huge}, Address: huge, Email: huge, Phone: huge}
	small := Person{Family: "Ж", Given: []string{"é"}, Address: "x", Email: "a@b", Phone: "1"}
	if hb, hs := testing.AllocsPerRun(5, func() { m.Compare(big, big) }), testing.AllocsPerRun(5, func() { m.Compare(small, small) }); hb > 10*hs+100 {
		t.Errorf("huge input: %v allocations, small: %v", hb, hs)
	}
	for _, k := range Keys(big) {
		if len(k) > 300 {
			t.Errorf("key of %d bytes", len(k))
		}
	}
}

// FuzzCompare: any pair of records scores in [0,1] without panicking, symmetrically.
func FuzzCompare(f *testing.F) {
	f.Add("Müller", "Robert", "1980-03-04", "+49 170", "a@b.c", "Mueller", "Bob", "1980-04-03", "0170", "A@B.C")
	f.Add("", "", "", "", "", "\xff", "Ж", "2020-13-45", "x", "@")
	f.Fuzz(func(t *testing.T, f1, g1, d1, p1, e1, f2, g2, d2, p2, e2 string) {
		a := Person{Family: f1, Given: []string{g1}, DateOfBirth: d1, Phone: p1, Email: e1, Address: g1 + f1}
		b := Person{Family: f2, Given: []string{g2}, DateOfBirth: d2, Phone: p2, Email: e2, Name: g2 + " " + f2}
		m := New(Config{})
		r1, r2 := m.Compare(a, b), m.Compare(b, a)
		if r1.Score < 0 || r1.Score > 1 || r1.Score != r2.Score {
			t.Fatalf("scores %v / %v", r1.Score, r2.Score)
		}
		_ = Keys(a)
	})
}

// TestProbeComparesAsCompare: a record prepared once (the registration the service scores
// against its candidates) scores every candidate exactly as Compare does, reasons included,
// across the synthetic population's pairs and the odd records above, and preparing it once
// does not change it (the probe is reused for every candidate).
func TestProbeComparesAsCompare(t *testing.T) {
	ps, _ := Generate(rand.New(rand.NewPCG(3, 20)), 300, 5)
	ps = append(ps, Person{}, Person{Name: "Ana María de la Cruz"}, Person{Family: "Ж", Given: []string{"é", "ъ"}})
	m := New(Config{IgnoredSystems: []string{SynthMRNSystem}})
	for _, a := range ps[:40] {
		probe := m.Probe(a)
		for _, b := range ps {
			want, got := m.Compare(a, b), probe.Compare(b)
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("probe of %+v against %+v:\n got %+v\nwant %+v", a, b, got, want)
			}
		}
	}
}
