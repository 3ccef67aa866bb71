package match

import (
	_ "embed"
	"strconv"
	"strings"
)

// nicknamesText is the given-name equivalence table; its header states its source.
//
//go:embed nicknames.txt
var nicknamesText string

// nicknameGroups maps a canonical given-name token to the groups (line numbers of
// nicknames.txt) it belongs to; a name can sit in several (Pat, Ted, Jon).
var nicknameGroups = parseNicknames(nicknamesText)

// parseNicknames reads the table; every name goes through nameTokens so the lookup key is the
// same spelling a comparison produces.
func parseNicknames(text string) map[string][]int {
	groups := map[string][]int{}
	for i, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, name := range strings.Fields(line) {
			for _, tok := range nameTokens(name) {
				if g := groups[tok]; len(g) == 0 || g[len(g)-1] != i {
					groups[tok] = append(g, i)
				}
			}
		}
	}
	return groups
}

// nicknames reports whether two canonical given-name tokens share a nickname group
// (Bob and Robert, Sasha and Alexander, Pepe and José).
func nicknames(a, b string) bool {
	for _, x := range nicknameGroups[a] {
		for _, y := range nicknameGroups[b] {
			if x == y {
				return true
			}
		}
	}
	return false
}

// nicknameRoot is the first group of a token, as a stable key for blocking, or the token
// itself when it has none.
func nicknameRoot(tok string) string {
	if g := nicknameGroups[tok]; len(g) > 0 {
		return "g" + strconv.Itoa(g[0])
	}
	return tok
}
