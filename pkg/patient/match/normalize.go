package match

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxRunes caps every free-text field before comparison: Jaro-Winkler is quadratic in the
// worst case, so a hostile megabyte-long name must cost no more than a real one.
const maxRunes = 64

// maxTokens caps how many name parts (given names, address words) are compared.
const maxTokens = 8

// fold maps a rune to its Latin, lower-case, diacritic-free spelling. Cyrillic follows a
// passport-style transliteration (ж→zh, х→kh, ц→ts, ю→yu), Greek ELOT 743 for the common
// letters; umlauts fold to the bare vowel here, and canon then folds the "ue/oe/ae" spelling
// to the same vowel, so Müller, Mueller and Muller meet.
var fold = map[rune]string{
	'à': "a", 'á': "a", 'â': "a", 'ã': "a", 'ä': "a", 'å': "a", 'ā': "a", 'ă': "a", 'ą': "a",
	'ç': "c", 'ć': "c", 'č': "c", 'ĉ': "c", 'ď': "d", 'đ': "d", 'ð': "d",
	'è': "e", 'é': "e", 'ê': "e", 'ë': "e", 'ē': "e", 'ė': "e", 'ę': "e", 'ě': "e",
	'ğ': "g", 'ģ': "g", 'ì': "i", 'í': "i", 'î': "i", 'ï': "i", 'ī': "i", 'į': "i", 'ı': "i",
	'ķ': "k", 'ĺ': "l", 'ļ': "l", 'ľ': "l", 'ł': "l", 'ñ': "n", 'ń': "n", 'ň': "n", 'ņ': "n",
	'ò': "o", 'ó': "o", 'ô': "o", 'õ': "o", 'ö': "o", 'ø': "o", 'ō': "o", 'ő': "o",
	'ŕ': "r", 'ř': "r", 'ś': "s", 'š': "s", 'ş': "s", 'ș': "s", 'ß': "ss",
	'ť': "t", 'ţ': "t", 'ț': "t", 'ù': "u", 'ú': "u", 'û': "u", 'ü': "u", 'ū': "u", 'ů': "u",
	'ű': "u", 'ų': "u", 'ý': "y", 'ÿ': "y", 'ź': "z", 'ż': "z", 'ž': "z",
	'æ': "ae", 'œ': "oe", 'þ': "th",
	// Cyrillic (Russian, Ukrainian, Bulgarian, Serbian letters in common use).
	'а': "a", 'б': "b", 'в': "v", 'г': "g", 'ґ': "g", 'д': "d", 'е': "e", 'ё': "e", 'є': "ye",
	'ж': "zh", 'з': "z", 'и': "i", 'і': "i", 'ї': "i", 'й': "y", 'ј': "j", 'к': "k", 'л': "l",
	'љ': "lj", 'м': "m", 'н': "n", 'њ': "nj", 'о': "o", 'п': "p", 'р': "r", 'с': "s", 'т': "t",
	'ћ': "c", 'у': "u", 'ф': "f", 'х': "kh", 'ц': "ts", 'ч': "ch", 'џ': "dz", 'ш': "sh",
	'щ': "shch", 'ъ': "", 'ы': "y", 'ь': "", 'э': "e", 'ю': "yu", 'я': "ya",
	// Greek, accented forms included.
	'α': "a", 'ά': "a", 'β': "v", 'γ': "g", 'δ': "d", 'ε': "e", 'έ': "e", 'ζ': "z", 'η': "i",
	'ή': "i", 'θ': "th", 'ι': "i", 'ί': "i", 'ϊ': "i", 'ΐ': "i", 'κ': "k", 'λ': "l", 'μ': "m",
	'ν': "n", 'ξ': "x", 'ο': "o", 'ό': "o", 'π': "p", 'ρ': "r", 'σ': "s", 'ς': "s", 'τ': "t",
	'υ': "y", 'ύ': "y", 'ϋ': "y", 'ΰ': "y", 'φ': "f", 'χ': "ch", 'ψ': "ps", 'ω': "o", 'ώ': "o",
}

// Transliterate lowercases s and spells it in plain Latin letters (a–z), digits and single
// spaces: every other rune, and invalid UTF-8, becomes a separator. It is the first step of
// every text comparison and of the blocking keys.
func Transliterate(s string) string {
	var b strings.Builder
	space, n := true, 0
	for len(s) > 0 && n < 4*maxRunes {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		n++
		r = unicode.ToLower(r)
		out := ""
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			out = string(r)
		default:
			out = fold[r]
		}
		if out == "" {
			if _, known := fold[r]; known { // ъ, ь: silent letters, not separators
				continue
			}
			if !space {
				b.WriteByte(' ')
				space = true
			}
			continue
		}
		b.WriteString(out)
		space = false
	}
	return strings.TrimSpace(b.String())
}

// canonReplacer folds the spelling variants that transliteration and national orthographies
// produce for one sound: ue/oe/ae for umlauts, kh/h, ks/x, ph/f, w/v (Wladimir, Vladimir),
// y/i (Yuri, Iurii), tch/ch, sch/sh, ck/k. J stays: folding it to i would make the pinyin
// names Jing and Ying one name.
var canonReplacer = strings.NewReplacer(
	"tsch", "ch", "sch", "sh", "tch", "ch", "shch", "sh", "ue", "u", "oe", "o", "ae", "a", "kh", "h", "ks", "x",
	"ph", "f", "ck", "k", "w", "v", "y", "i", "q", "k", "th", "t",
)

// canon is the comparison spelling of one transliterated name token: canonReplacer's folds,
// then doubled letters collapsed (Mueller → muler, Iurii → iuri).
func canon(tok string) string {
	t := canonReplacer.Replace(tok)
	var b strings.Builder
	var prev byte
	for i := 0; i < len(t); i++ {
		if t[i] == prev {
			continue
		}
		prev = t[i]
		b.WriteByte(t[i])
	}
	return b.String()
}

// nameTokens transliterates s and returns the canonical spelling of its letter-only words,
// at most maxTokens of them, each at most maxRunes long.
func nameTokens(s string) []string {
	var out []string
	for _, f := range strings.Fields(Transliterate(s)) {
		f = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' {
				return r
			}
			return -1
		}, f)
		if f == "" {
			continue
		}
		c := canon(f)
		if len(c) > maxRunes {
			c = c[:maxRunes]
		}
		out = append(out, c)
		if len(out) == maxTokens {
			break
		}
	}
	return out
}

// digits keeps the ASCII digits of s, at most 32 of them.
func digits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 32; i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// NormalPhone returns the last nine digits of a phone number, the part that survives
// national/international prefixes (+44 20…, 020…, 0044 20…), or "" when fewer than seven
// digits remain, which is no phone number at all.
func NormalPhone(s string) string {
	d := digits(s)
	if len(d) < 7 {
		return ""
	}
	if len(d) > 9 {
		d = d[len(d)-9:]
	}
	return d
}

// NormalEmail lowercases and trims an address; "" unless it has a local part and a domain.
// Dots and plus-tags are kept: that Gmail ignores them is not true of every provider.
func NormalEmail(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || len(s) > 254 || !utf8.ValidString(s) {
		return ""
	}
	return s
}

// date is a parsed YYYY-MM-DD.
type date struct{ y, m, d int }

// parseDate reads a strict YYYY-MM-DD with a plausible month and day; ok false otherwise.
func parseDate(s string) (date, bool) {
	s = strings.TrimSpace(s)
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return date{}, false
	}
	num := func(t string) (int, bool) {
		n := 0
		for i := 0; i < len(t); i++ {
			if t[i] < '0' || t[i] > '9' {
				return 0, false
			}
			n = n*10 + int(t[i]-'0')
		}
		return n, true
	}
	y, ok1 := num(s[:4])
	m, ok2 := num(s[5:7])
	d, ok3 := num(s[8:])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > 31 {
		return date{}, false
	}
	return date{y, m, d}, true
}

// jaroWinkler is the Jaro-Winkler similarity of two byte strings in [0,1] (prefix scale 0.1,
// at most 4 prefix bytes); tokens are ASCII after nameTokens, so bytes are letters.
func jaroWinkler(a, b string) float64 {
	if a == b {
		if a == "" {
			return 0
		}
		return 1
	}
	la, lb := len(a), len(b)
	if la == 0 || lb == 0 {
		return 0
	}
	window := max(la, lb)/2 - 1
	if window < 0 {
		window = 0
	}
	var ma, mb [maxRunes]bool
	matches := 0
	for i := 0; i < la; i++ {
		lo, hi := max(0, i-window), min(lb, i+window+1)
		for j := lo; j < hi; j++ {
			if !mb[j] && a[i] == b[j] {
				ma[i], mb[j] = true, true
				matches++
				break
			}
		}
	}
	if matches == 0 {
		return 0
	}
	t, k := 0, 0
	for i := 0; i < la; i++ {
		if !ma[i] {
			continue
		}
		for !mb[k] {
			k++
		}
		if a[i] != b[k] {
			t++
		}
		k++
	}
	m := float64(matches)
	jaro := (m/float64(la) + m/float64(lb) + (m-float64(t)/2)/m) / 3
	prefix := 0
	for prefix < 4 && prefix < la && prefix < lb && a[prefix] == b[prefix] {
		prefix++
	}
	return jaro + float64(prefix)*0.1*(1-jaro)
}
