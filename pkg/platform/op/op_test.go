package op

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/authz"
)

type set struct {
	A endpoint.Endpoint `op:"A"`
	B endpoint.Endpoint `op:"B"`
}

var table = Table{
	{Name: "A", Roles: []string{authz.Public}, Write: true},
	{Name: "B", Roles: []string{authz.RoleClinician}, Action: "read", Rate: "slow"},
}

func nop(context.Context, any) (any, error) { return "nop", nil }

// tag returns a Func recording the names it saw and marking each endpoint's answer.
func tag(seen *[]string) Func {
	return func(name string, e endpoint.Endpoint) endpoint.Endpoint {
		*seen = append(*seen, name)
		return func(ctx context.Context, req any) (any, error) {
			r, err := e(ctx, req)
			return name + ":" + r.(string), err
		}
	}
}

func TestBindWrapsEveryOperation(t *testing.T) {
	var seen []string
	s := Bind(table, set{A: nop, B: nop}, tag(&seen))
	if !slices.Equal(seen, []string{"A", "B"}) {
		t.Fatalf("wrapped %v; want [A B]", seen)
	}
	if r, _ := s.B(context.Background(), nil); r != "B:nop" {
		t.Fatalf("B answered %v; want B:nop", r)
	}
}

func TestMapSkipsMissingEndpoints(t *testing.T) {
	var seen []string
	s := Map(set{B: nop}, tag(&seen))
	if s.A != nil || !slices.Equal(seen, []string{"B"}) {
		t.Fatalf("Map of a partial set wrapped %v, A=%v", seen, s.A)
	}
}

// TestBindFailsClosed: an operation without a row, a row without a field, a field without an
// endpoint or a tag each stop the wiring.
func TestBindFailsClosed(t *testing.T) {
	type untagged struct{ A endpoint.Endpoint }
	cases := map[string]func(){
		"field without row": func() { Bind(table[:1], set{A: nop, B: nop}, Chain()) },
		"row without field": func() { Bind(append(table, Op{Name: "C"}), set{A: nop, B: nop}, Chain()) },
		"nil endpoint":      func() { Bind(table, set{A: nop}, Chain()) },
		"untagged field":    func() { Map(untagged{A: nop}, Chain()) },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(r.(string), "op: ") {
					t.Fatalf("recovered %v; want an op: panic", r)
				}
			}()
			f()
		})
	}
}

func TestDerivedTables(t *testing.T) {
	if got := table.Roles(); !slices.Equal(got["B"], []string{authz.RoleClinician}) || !slices.Equal(got["A"], []string{authz.Public}) {
		t.Errorf("Roles = %v", got)
	}
	if got := table.Reads(); !got["B"] || got["A"] {
		t.Errorf("Reads = %v; want only B", got)
	}
	if got := table.Actions(); len(got) != 1 || got["B"] != "read" {
		t.Errorf("Actions = %v; want B: read", got)
	}
	if got := table.Rates(); len(got) != 1 || got["B"] != "slow" {
		t.Errorf("Rates = %v", got)
	}
	gw := Table{{Name: "P", Roles: []string{authz.Public}}, {Name: "X", Roles: []string{authz.RoleAdmin}},
		{Name: "C", Roles: []string{authz.RoleClinician, authz.RoleBilling}}, {Name: "V", Roles: []string{authz.Authenticated}}}.Gateway()
	want := map[string]string{"P": authz.Public, "X": authz.RoleAdmin, "C": authz.Authenticated, "V": authz.Authenticated}
	for n, r := range want {
		if !slices.Equal(gw[n], []string{r}) {
			t.Errorf("Gateway()[%s] = %v; want [%s]", n, gw[n], r)
		}
	}
	audits := Table{{Name: "A", Roles: []string{authz.RoleAdmin, authz.RolePrivacy}}}.Gateway()
	if !slices.Equal(audits["A"], []string{authz.RoleAdmin, authz.RolePrivacy}) {
		t.Errorf("Gateway()[A] = %v; want admin and privacy (audit readers)", audits["A"])
	}
}
