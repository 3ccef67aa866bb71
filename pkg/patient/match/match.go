// Package match scores how likely two patient records describe the same person (issue 19,
// duplicate detection). It is pure Go with no database: the patient service feeds it the
// candidates that share a blocking key (Keys) with the record being registered, and answers
// 409 possible_duplicate with the Results whose Score passes the threshold.
//
// The score is a Fellegi–Sunter log-likelihood: each field's agreement level carries a
// weight, log2 of how much likelier that level is among true pairs than among different
// people who share a blocking key; the weights add and the sum maps to [0,1] through a
// logistic curve. docs/matching.md lists the weights, the threshold and the measured
// precision and recall on the synthetic population of Generate.
package match

import (
	"math"
	"strings"
)

// Identifier is a business identifier of a patient: a system URI and a value in it.
type Identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// Person is what the engine compares: the demographics of a patient record. Name is the
// display text, used only when Family and Given are both empty (records from before the
// structured name). DateOfBirth is YYYY-MM-DD; anything else counts as missing.
type Person struct {
	Family      string       `json:"family,omitempty"`
	Given       []string     `json:"given,omitempty"`
	Name        string       `json:"name,omitempty"`
	Gender      string       `json:"gender,omitempty"`
	DateOfBirth string       `json:"date_of_birth,omitempty"`
	Phone       string       `json:"phone,omitempty"`
	Email       string       `json:"email,omitempty"`
	Identifiers []Identifier `json:"identifiers,omitempty"`
	Address     string       `json:"address,omitempty"`
}

// Reason is one field's contribution to a score: which field, the agreement level found
// (exact, nickname, typo, swapped, conflict, missing …) and its weight in bits.
type Reason struct {
	Field  string  `json:"field"`
	Level  string  `json:"level"`
	Weight float64 `json:"weight"`
}

// Result is the comparison of two records: Score in [0,1], the summed Weight it comes from,
// and the per-field Reasons (the "scored candidates" of a 409 show them).
type Result struct {
	Score   float64  `json:"score"`
	Weight  float64  `json:"weight"`
	Reasons []Reason `json:"reasons"`
}

// DefaultThreshold is the score from which a pair counts as a possible duplicate, chosen
// from BenchmarkMatchQuality on 10,000 synthetic patients with 5% duplicates
// (docs/matching.md, "Measured").
const DefaultThreshold = 0.5

// offset is the summed weight that maps to score 0.5: the prior log-odds against a match
// among blocked candidates plus the evidence the threshold asks for.
const offset = 12.0

// weights are the per-level weights in bits (log2 likelihood ratios). They were set from
// the error rates of real registries reported in the record-linkage literature and then
// adjusted against the synthetic population; docs/matching.md explains each.
var weights = map[string]float64{
	"family/exact": 5, "family/close": 3.5, "family/partial": 1, "family/different": -3,
	"given/exact": 5, "given/nickname": 4.5, "given/close": 3.5, "given/typo": 2.5, "given/initial": 1, "given/different": -7,
	"names/swapped": -1, // penalty on top of the swapped comparison's weights
	"dob/exact":     8, "dob/swapped": 6, "dob/typo": 5, "dob/year-month": 1.5, "dob/different": -8,
	"phone/exact": 5, "phone/different": -1,
	"email/exact": 6, "email/different": -1,
	"identifier/exact": 16, "identifier/conflict": -12,
	"gender/exact": 0.5, "gender/different": -4,
	"address/exact": 2.5, "address/partial": 1, "address/different": -0.5,
}

// Config tunes a Matcher. IgnoredSystems lists identifier systems whose values say nothing
// across records, such as the platform's own MRN system (every record gets a new MRN, so two
// registrations of one person always "conflict" there).
type Config struct {
	Threshold      float64
	IgnoredSystems []string
}

// Matcher compares patient records under a Config.
type Matcher struct {
	threshold float64
	ignored   map[string]bool
}

// New returns a Matcher; a zero Threshold means DefaultThreshold.
func New(c Config) *Matcher {
	m := &Matcher{threshold: c.Threshold, ignored: map[string]bool{}}
	if m.threshold <= 0 || m.threshold > 1 || math.IsNaN(m.threshold) {
		m.threshold = DefaultThreshold
	}
	for _, s := range c.IgnoredSystems {
		m.ignored[normalSystem(s)] = true
	}
	return m
}

// Threshold is the score from which Match reports a possible duplicate.
func (m *Matcher) Threshold() float64 { return m.threshold }

// Match compares a and b and reports whether the score passes the threshold.
func (m *Matcher) Match(a, b Person) (Result, bool) {
	r := m.Compare(a, b)
	return r, r.Score >= m.threshold
}

// prepared is a Person in comparison form, computed once per record.
type prepared struct {
	family, given []string // canonical tokens
	dob           date
	hasDOB        bool
	phone, email  string
	gender        string
	address       []string
	ids           []Identifier
}

// prepare normalises p. With no structured name, the display Name splits into given names
// and a family name (the last word), the most common order among the cultures generated.
func (m *Matcher) prepare(p Person) prepared {
	var q prepared
	p.Family, p.Name, p.Gender, p.DateOfBirth = clip(p.Family), clip(p.Name), clip(p.Gender), clip(p.DateOfBirth)
	p.Phone, p.Email, p.Address = clip(p.Phone), clip(p.Email), clip(p.Address)
	q.family = nameTokens(p.Family)
	for _, g := range p.Given {
		if len(q.given) >= maxTokens {
			break
		}
		q.given = append(q.given, nameTokens(clip(g))...)
	}
	if len(q.family) == 0 && len(q.given) == 0 {
		if toks := nameTokens(p.Name); len(toks) > 0 {
			q.family, q.given = toks[len(toks)-1:], toks[:len(toks)-1]
		}
	}
	q.dob, q.hasDOB = parseDate(p.DateOfBirth)
	q.phone = NormalPhone(p.Phone)
	q.email = NormalEmail(p.Email)
	switch g := strings.ToLower(strings.TrimSpace(p.Gender)); g {
	case "male", "female", "other":
		q.gender = g
	}
	q.address = strings.Fields(Transliterate(p.Address))
	if len(q.address) > 2*maxTokens {
		q.address = q.address[:2*maxTokens]
	}
	for i, id := range p.Identifiers {
		if i == 32 {
			break
		}
		sys, val := normalSystem(clip(id.System)), normalValue(clip(id.Value))
		if sys == "" || val == "" || m.ignored[sys] {
			continue
		}
		q.ids = append(q.ids, Identifier{System: sys, Value: val})
	}
	return q
}

// clip cuts a raw field to maxField bytes before any normalisation looks at it, so a
// hostile megabyte costs what a kilobyte does. No real name, address or identifier is longer.
func clip(s string) string {
	if len(s) > maxField {
		return s[:maxField]
	}
	return s
}

// maxField is clip's limit in bytes.
const maxField = 1024

// normalSystem trims and lowercases an identifier system URI.
func normalSystem(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) > 256 {
		s = s[:256]
	}
	return s
}

// normalValue uppercases an identifier value and drops spaces, hyphens and dots, which
// people type differently (AB 12 34 56 C = AB123456C).
func normalValue(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if r == ' ' || r == '-' || r == '.' || r == '/' || r == '\t' {
			continue
		}
		if b.Len() >= 64 {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Compare scores a against b. It never fails: a field missing or unreadable on either side
// weighs nothing.
func (m *Matcher) Compare(a, b Person) Result {
	return compare(m.prepare(a), m.prepare(b))
}

// Probe is one record prepared once for comparison with many: a registration against its
// candidates, where Compare would prepare the registration again for every candidate (about
// half of a comparison's cost is preparing, BenchmarkCompare).
type Probe struct {
	m *Matcher
	p prepared
}

// Probe prepares a for comparison with many records.
func (m *Matcher) Probe(a Person) Probe { return Probe{m: m, p: m.prepare(a)} }

// Compare scores the probe's record against b: Matcher.Compare(a, b), with a prepared once.
func (p Probe) Compare(b Person) Result { return compare(p.p, p.m.prepare(b)) }

// maxReasons is the most reasons compare gives: one per field, and names/swapped.
const maxReasons = 9

// compare is Compare on prepared records.
func compare(a, b prepared) Result {
	rs := make([]Reason, 0, maxReasons)
	add := func(field, level string) {
		rs = append(rs, Reason{Field: field, Level: level, Weight: weights[field+"/"+level]})
	}
	// Names, straight and with family and given swapped; the better reading wins.
	fl, gl := familyLevel(a.family, b.family), givenLevel(a.given, b.given)
	straight := weights["family/"+fl] + weights["given/"+gl]
	// Swapped both ways round, the better kept, so that Compare(a, b) == Compare(b, a).
	sf, sg := familyLevel(a.family, b.given), givenLevel(a.given, b.family)
	swapped := weights["family/"+sf] + weights["given/"+sg] + weights["names/swapped"]
	if rf, rg := familyLevel(b.family, a.given), givenLevel(b.given, a.family); weights["family/"+rf]+weights["given/"+rg]+weights["names/swapped"] > swapped {
		sf, sg, swapped = rf, rg, weights["family/"+rf]+weights["given/"+rg]+weights["names/swapped"]
	}
	if sf != "missing" && sg != "missing" && swapped > straight {
		add("family", sf)
		add("given", sg)
		add("names", "swapped")
	} else {
		add("family", fl)
		add("given", gl)
	}
	givenDiffers := gl == "different" && !(swapped > straight)
	dl := dobLevel(a, b)
	add("dob", dl)
	add("gender", eqLevel(a.gender, b.gender))
	add("identifier", idLevel(a.ids, b.ids))
	// Contact details are shared within a household: when the given names or the dates of birth
	// clearly differ they say "same household", not "same person" (twins, spouses, a father and
	// a son of one name), so they weigh nothing then. This is the one dependence
	// Fellegi–Sunter's independent weights would miss.
	household := givenDiffers || dl == "different"
	contacts := []struct{ field, level string }{
		{"phone", eqLevel(a.phone, b.phone)},
		{"email", eqLevel(a.email, b.email)},
		{"address", addressLevel(a.address, b.address)},
	}
	for _, c := range contacts {
		if household && c.level != "missing" {
			rs = append(rs, Reason{Field: c.field, Level: c.level + "-household", Weight: 0})
			continue
		}
		add(c.field, c.level)
	}
	total := 0.0
	for _, r := range rs {
		total += r.Weight
	}
	return Result{Score: 1 / (1 + math.Exp2(offset-total)), Weight: total, Reasons: rs}
}

// eqLevel compares two normalised values: exact, different, or missing when either is empty.
func eqLevel(a, b string) string {
	switch {
	case a == "" || b == "":
		return "missing"
	case a == b:
		return "exact"
	default:
		return "different"
	}
}

// familyLevel compares family names token-wise (double-barrelled names, one part dropped,
// count as close): the best pair of tokens decides, or the joined forms when they are closer.
func familyLevel(a, b []string) string {
	if len(a) == 0 || len(b) == 0 {
		return "missing"
	}
	ja, jb := strings.Join(a, ""), strings.Join(b, "")
	if ja == jb {
		return "exact"
	}
	best := jaroWinkler(trim(ja), trim(jb))
	if ja[0] == jb[0] && oneEdit(trim(ja), trim(jb)) {
		best = max(best, 0.95) // one slip of the keyboard (Wright/Wgight), which JW underrates
	}
	for _, x := range a {
		for _, y := range b {
			s := jaroWinkler(x, y)
			if x == y {
				s = 0.97 // one part of a compound name
			}
			best = max(best, s)
		}
	}
	switch {
	case best >= 0.92:
		return "close"
	case best >= 0.85:
		return "partial"
	default:
		return "different"
	}
}

// trim caps a joined name at maxRunes bytes for jaroWinkler's fixed buffers.
func trim(s string) string {
	if len(s) > maxRunes {
		return s[:maxRunes]
	}
	return s
}

// givenLevel compares given names. Only the first given name of each side is required to
// agree, and it may agree with any given name of the other (middle names go missing or
// become the name in use); nicknames count as near-exact, a lone initial weakly.
func givenLevel(a, b []string) string {
	if len(a) == 0 || len(b) == 0 {
		return "missing"
	}
	rank := func(l string) int {
		switch l {
		case "exact":
			return 5
		case "nickname":
			return 4
		case "close":
			return 3
		case "typo":
			return 2
		case "initial":
			return 1
		}
		return 0
	}
	best := "different"
	try := func(x, y string) {
		l := "different"
		switch {
		case x == y:
			l = "exact"
		case len(x) == 1 || len(y) == 1:
			if x[0] == y[0] {
				l = "initial"
			}
		case nicknames(x, y):
			l = "nickname"
		case jaroWinkler(x, y) >= 0.88:
			l = "close"
		case x[0] == y[0] && oneEdit(x, y): // not the first letter: Hao and Tao are two names
			l = "typo"
		}
		if rank(l) > rank(best) {
			best = l
		}
	}
	for _, y := range b {
		try(a[0], y)
	}
	for _, x := range a[1:] {
		try(x, b[0])
	}
	return best
}

// oneEdit reports whether x and y are one edit apart (a letter substituted, dropped,
// inserted, or two neighbours transposed): the typos Jaro-Winkler underrates in short names
// (Xiu/Xu, Emeka/Eoeka).
func oneEdit(x, y string) bool {
	if len(x) < len(y) {
		x, y = y, x
	}
	switch len(x) - len(y) {
	case 0:
		diff := -1
		for i := 0; i < len(x); i++ {
			if x[i] != y[i] {
				if diff >= 0 {
					return i == diff+1 && x[diff] == y[i] && x[i] == y[diff] && x[i+1:] == y[i+1:]
				}
				diff = i
			}
		}
		return diff >= 0
	case 1:
		i := 0
		for i < len(y) && x[i] == y[i] {
			i++
		}
		return x[i+1:] == y[i:]
	}
	return false
}

// dobLevel compares dates of birth: exact, day and month swapped, one digit mistyped,
// same year and month, or different.
func dobLevel(a, b prepared) string {
	if !a.hasDOB || !b.hasDOB {
		return "missing"
	}
	x, y := a.dob, b.dob
	switch {
	case x == y:
		return "exact"
	case x.y == y.y && x.m == y.d && x.d == y.m:
		return "swapped"
	case digitDiffs(x, y) == 1:
		return "typo"
	case x.y == y.y && x.m == y.m:
		return "year-month"
	default:
		return "different"
	}
}

// digitDiffs counts the differing digits of two dates written YYYYMMDD.
func digitDiffs(x, y date) int {
	n := 0
	a, b := x.y*10000+x.m*100+x.d, y.y*10000+y.m*100+y.d
	for i := 0; i < 8; i++ {
		if a%10 != b%10 {
			n++
		}
		a, b = a/10, b/10
	}
	return n
}

// idLevel compares identifiers: one shared (system, value) is exact and near-certain; a
// shared system with different values and no shared pair is a conflict.
func idLevel(a, b []Identifier) string {
	level := "missing"
	for _, x := range a {
		for _, y := range b {
			if x.System != y.System {
				continue
			}
			if x.Value == y.Value {
				return "exact"
			}
			level = "conflict"
		}
	}
	return level
}

// addressLevel compares addresses by their words: exact, partial (Jaccard ≥ 0.6: a missing
// flat number, an abbreviated street), or different.
func addressLevel(a, b []string) string {
	if len(a) == 0 || len(b) == 0 {
		return "missing"
	}
	set := map[string]bool{}
	for _, w := range a {
		set[w] = true
	}
	inter, union := 0, len(set)
	seen := map[string]bool{}
	for _, w := range b {
		if seen[w] {
			continue
		}
		seen[w] = true
		if set[w] {
			inter++
		} else {
			union++
		}
	}
	switch j := float64(inter) / float64(union); {
	case j == 1:
		return "exact"
	case j >= 0.6:
		return "partial"
	default:
		return "different"
	}
}
