package auth

import (
	_ "embed"
	"strings"
	"sync"
	"unicode"
)

// commonPasswordsText is the list of common and breached passwords shipped with the binary
// (NIST SP 800-63B §5.1.1.2). No public list could be downloaded where it was made, so it
// is a compact hand-built list of the best-known entries (see the file's header); the rules
// in isCommonPassword extend it to the usual variations (digit and punctuation affixes,
// simple character substitutions, repetitions and keyboard or alphabet sequences).
//
//go:embed common_passwords.txt
var commonPasswordsText string

// commonPasswords is the list as a set, built on first use.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{})
	for _, line := range strings.Split(commonPasswordsText, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		set[strings.ToLower(line)] = struct{}{}
	}
	return set
})

// sequences are the runs a password must not be a piece of (either way round).
var sequences = []string{
	"012345678901234567890123456789",
	"1q2w3e4r5t6y7u8i9o0p",
	"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
	"qwertyuiopasdfghjklzxcvbnm",
	"1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
	"qazwsxedcrfvtgbyhnujmikolp",
}

// leet undoes the common character substitutions (p@ssw0rd → password).
var leet = strings.NewReplacer("@", "a", "4", "a", "0", "o", "1", "i", "!", "i", "3", "e", "$", "s", "5", "s", "7", "t")

// isCommonPassword reports whether password is on the common-password list or one of its
// usual variations, or is built of a repetition or a sequence. Case does not matter.
func isCommonPassword(password string) bool {
	p := strings.ToLower(password)
	list := commonPasswords()
	if _, ok := list[p]; ok {
		return true
	}
	if isRepetition(p) || isSequence(p) {
		return true
	}
	// The word with the digits and punctuation people put around it taken off.
	core := strings.TrimFunc(p, func(r rune) bool {
		return unicode.IsDigit(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r)
	})
	if core == "" {
		// Nothing but digits and punctuation: refused above when a run or a sequence.
		return false
	}
	for _, c := range []string{core, leet.Replace(core), leet.Replace(p)} {
		if _, ok := list[c]; ok {
			return true
		}
		if isRepetition(c) {
			return true
		}
	}
	// A listed word repeated (qwertyqwerty, dragondragon).
	for n := 2; n <= 4; n++ {
		if len(core)%n == 0 {
			unit := core[:len(core)/n]
			if strings.Repeat(unit, n) == core {
				if _, ok := list[unit]; ok {
					return true
				}
			}
		}
	}
	return false
}

// isRepetition reports whether s is a unit of at most four bytes repeated (aaaaaaaaaaaa,
// abcabcabcabc, 121212121212).
func isRepetition(s string) bool {
	for n := 1; n <= 4 && n < len(s); n++ {
		if len(s)%n == 0 && strings.Repeat(s[:n], len(s)/n) == s {
			return true
		}
	}
	return false
}

// isSequence reports whether s is a piece of an alphabet, digit or keyboard run, forwards
// or backwards.
func isSequence(s string) bool {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	rev := string(r)
	for _, q := range sequences {
		if strings.Contains(q, s) || strings.Contains(q, rev) {
			return true
		}
	}
	return false
}
