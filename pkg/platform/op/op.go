// Package op is a service's operation table: every operation a service serves is declared
// once — its name, who may call it, whether it reads or writes, the audit action of a refused
// call, its rate class — and everything that used to repeat those facts is derived from the
// table: the endpoint set's wrapping, the role table, the denied-auditor's actions, the
// gateway's role and read-retry lists. A new operation is one table row, one Set field
// (tagged with the operation's name) and its code; forgetting the row fails at wiring.
package op

import (
	"fmt"
	"reflect"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/typed"
)

// Op is one operation of a service.
type Op struct {
	// Name is the method name: the key of metrics, logs, rate limits and roles, the gRPC
	// method name, and the `op` tag of its field in the service's endpoint Set.
	Name string
	// Roles may call it: roles (admin is implied), or authz.Public, or authz.Authenticated.
	Roles []string
	// Write marks an operation that changes state; the others are reads, idempotent, and the
	// only ones a client (the gateway) retries.
	Write bool
	// Action is the audit action recorded when the guard refuses a call; empty means a refused
	// call is not audited (it concerns no record: a garbage token on /validate).
	Action string
	// Rate is the operation's rate class, a key of stack.Options.Limits; empty is the default.
	Rate string
}

// Table is a service's operations, in route order.
type Table []Op

// Names lists the operations' names, in table order.
func (t Table) Names() []string {
	out := make([]string, len(t))
	for i, o := range t {
		out[i] = o.Name
	}
	return out
}

// Roles is the table's role table for authz.Guard.
func (t Table) Roles() authz.RoleTable {
	out := authz.RoleTable{}
	for _, o := range t {
		out[o.Name] = o.Roles
	}
	return out
}

// Reads is the set of operations that do not write.
func (t Table) Reads() map[string]bool {
	out := map[string]bool{}
	for _, o := range t {
		if !o.Write {
			out[o.Name] = true
		}
	}
	return out
}

// Actions maps each operation whose refusals are audited to its audit action.
func (t Table) Actions() map[string]string {
	out := map[string]string{}
	for _, o := range t {
		if o.Action != "" {
			out[o.Name] = o.Action
		}
	}
	return out
}

// Gateway is the coarse role table the gateway checks before the service checks its own
// (API.md, "Gateway routing"): public operations stay public, admin-only ones need admin,
// audit readings (admin and privacy only) need one of those, every other needs any valid
// token — the service then applies its finer table.
func (t Table) Gateway() authz.RoleTable {
	out := authz.RoleTable{}
	for _, o := range t {
		switch {
		case len(o.Roles) == 1 && (o.Roles[0] == authz.Public || o.Roles[0] == authz.RoleAdmin):
			out[o.Name] = o.Roles
		case auditOnly(o.Roles):
			out[o.Name] = o.Roles
		default:
			out[o.Name] = []string{authz.Authenticated}
		}
	}
	return out
}

// auditOnly reports whether roles are admin and privacy only: the readers of audit logs.
func auditOnly(roles []string) bool {
	for _, r := range roles {
		if r != authz.RoleAdmin && r != authz.RolePrivacy {
			return false
		}
	}
	return len(roles) > 0
}

// Rates maps each operation with a rate class to it.
func (t Table) Rates() map[string]string {
	out := map[string]string{}
	for _, o := range t {
		if o.Rate != "" {
			out[o.Name] = o.Rate
		}
	}
	return out
}

// Func wraps the endpoint of the operation name.
type Func func(name string, e endpoint.Endpoint) endpoint.Endpoint

// Chain is the Func putting mws (the first outermost) around every endpoint.
func Chain(mws ...endpoint.Middleware) Func {
	return func(_ string, e endpoint.Endpoint) endpoint.Endpoint { return typed.Chain(e, mws...) }
}

var endpointType = reflect.TypeOf(endpoint.Endpoint(nil))

// Map returns set — a struct whose endpoint.Endpoint fields are tagged `op:"<name>"` — with
// f applied to every endpoint that is not nil (a client may implement a subset). A field
// without a tag is a programming error and panics.
func Map[S any](set S, f Func) S {
	v := reflect.ValueOf(&set).Elem()
	forEach(v, func(name string, field reflect.Value) {
		if field.IsNil() {
			return
		}
		field.Set(reflect.ValueOf(f(name, field.Interface().(endpoint.Endpoint))))
	})
	return set
}

// Bind checks that set has exactly the operations of t — a field for every row, a row for
// every field, every endpoint present — and returns Map(set, f). It panics otherwise: a
// server wired with an operation missing from its table fails closed, at start-up.
func Bind[S any](t Table, set S, f Func) S {
	want := map[string]bool{}
	for _, o := range t {
		want[o.Name] = true
	}
	forEach(reflect.ValueOf(set), func(name string, field reflect.Value) {
		switch {
		case !want[name]:
			panic(fmt.Sprintf("op: %T field for %q has no row in the operation table", set, name))
		case field.IsNil():
			panic(fmt.Sprintf("op: %T has no endpoint for %q", set, name))
		}
		delete(want, name)
	})
	for name := range want {
		panic(fmt.Sprintf("op: operation %q has no field in %T", name, set))
	}
	return Map(set, f)
}

// forEach calls f with every endpoint field of the struct v and its operation name.
func forEach(v reflect.Value, f func(name string, field reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Type != endpointType {
			continue
		}
		name, ok := sf.Tag.Lookup("op")
		if !ok || name == "" {
			panic(fmt.Sprintf("op: %s.%s has no op tag", t, sf.Name))
		}
		f(name, v.Field(i))
	}
}
