package match

import (
	"fmt"
	"slices"
)

// Keys returns the blocking keys of p: two records can only be scored against each other
// when they share one, so the service stores them in an indexed column (or table) and
// fetches candidates with `key IN (…)` instead of scoring every patient. The keys, each
// prefixed by its kind (docs/matching.md, "Blocking keys"):
//
//   - n:<code>:<year>  phonetic code of each family-name part and of the first given name,
//     with the birth year (both name parts are keyed, so a swapped given/family still meets);
//   - g:<code>:<group> phonetic code of the family name with the first given name's nickname
//     group (a date of birth missing on one side);
//   - m:<code>:<a>-<b> phonetic code of each family-name part with birth day and month sorted
//     (the year mistyped and the given name too);
//   - d:<year>:<a>:<b> the date of birth with day and month sorted (a swapped day/month meets);
//   - f:<given>:<m>-<d> the first given name's nickname group with birth day and month (the
//     family name changed at marriage, the year mistyped);
//   - p:<last nine digits>, e:<email>, i:<system>|<value>.
//
// Every key is derived from canonical spellings, so transliterations and umlaut spellings of
// one name share them.
func Keys(p Person) []string {
	return New(Config{}).Keys(p)
}

// Keys is the package-level Keys, leaving out identifiers of the Matcher's ignored systems.
func (m *Matcher) Keys(p Person) []string {
	q := m.prepare(p)
	var keys []string
	add := func(format string, args ...any) { keys = append(keys, fmt.Sprintf(format, args...)) }
	var firstGiven string
	if len(q.given) > 0 {
		firstGiven = q.given[0]
	}
	if q.hasDOB {
		for _, f := range q.family {
			add("n:%s:%d", soundex(f), q.dob.y)
		}
		if firstGiven != "" {
			add("n:%s:%d", soundex(firstGiven), q.dob.y)
			add("f:%s:%d-%d", nicknameRoot(firstGiven), min(q.dob.m, q.dob.d), max(q.dob.m, q.dob.d))
		}
		add("d:%d:%d:%d", q.dob.y, min(q.dob.m, q.dob.d), max(q.dob.m, q.dob.d))
		for _, f := range q.family {
			add("m:%s:%d-%d", soundex(f), min(q.dob.m, q.dob.d), max(q.dob.m, q.dob.d))
		}
	}
	if len(q.family) > 0 && firstGiven != "" {
		add("g:%s:%s", soundex(q.family[0]), nicknameRoot(firstGiven))
	}
	if q.phone != "" {
		add("p:%s", q.phone)
	}
	if q.email != "" {
		add("e:%s", q.email)
	}
	for _, id := range q.ids {
		add("i:%s|%s", id.System, id.Value)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// soundex is American Soundex of a canonical (a–z) token: the first letter and three digits
// for the consonant classes. Canonical spelling has already folded the transliteration
// variants Soundex would otherwise split (Yuri/Iurii, Wladimir/Vladimir).
func soundex(s string) string {
	if s == "" {
		return ""
	}
	code := func(c byte) byte {
		switch c {
		case 'b', 'f', 'p', 'v':
			return '1'
		case 'c', 'g', 'j', 'k', 'q', 's', 'x', 'z':
			return '2'
		case 'd', 't':
			return '3'
		case 'l':
			return '4'
		case 'm', 'n':
			return '5'
		case 'r':
			return '6'
		}
		return 0 // vowels, h, w, y
	}
	out := []byte{s[0]}
	last := code(s[0])
	for i := 1; i < len(s) && len(out) < 4; i++ {
		c := code(s[i])
		if c != 0 && c != last {
			out = append(out, c)
		}
		if s[i] != 'h' && s[i] != 'w' {
			last = c
		}
	}
	for len(out) < 4 {
		out = append(out, '0')
	}
	return string(out)
}
