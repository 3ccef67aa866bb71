// Package pms holds no code, only the test that keeps the layout of DESIGN.md true: imports
// flow cmd → pkg/gateway → transport → pkg/<service> → pkg/platform, and never back.
package pms

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The layering rules, written against paths relative to the module root. They classify any
// package by where it lives, so a new service (pkg/fhir) or a new transport (transport/nats)
// is held to them without editing this file.
//
//   - pkg/<service> (every folder of pkg/ but platform and gateway) never depends on
//     transport/, cmd/, pkg/gateway, another service, or a proto stub; the one proto
//     package it may use is proto/pms/events/v1, its events being its published language
//     (DESIGN.md, "Layout").
//   - A transport (every folder of transport/ but the neutral ones, today wire) never
//     depends on a sibling transport, pkg/gateway or cmd/.
//   - A neutral transport package (transport/wire: the rules HTTP and Kafka share) depends
//     on no transport, no service, no pkg/gateway and no cmd/: both transports import it.
//   - pkg/platform/... depends on no service, no transport, no pkg/gateway and no cmd/, and
//     on no proto package but one: proto/pms/events/v1, whose AuditEvent the audit
//     package's outbox hook publishes for every service (DESIGN.md lets platform use "the chosen
//     dependencies"; docs/design.md records this one exception). The exception names the
//     package, not its importer, so the hook may move within pkg/platform.
//   - Nothing outside cmd/ depends on cmd/, tests included.
//
// "Depends on" is the transitive closure `go list -deps` computes, so a forbidden import
// cannot hide behind an allowed one; the report shows the import chain.

// neutralTransports are the folders of transport/ that are shared codecs, not transports.
var neutralTransports = []string{"wire"}

// notServices are the folders of pkg/ that are not services.
var notServices = []string{"platform", "gateway"}

// serviceProto is the one proto package a service may use.
const serviceProto = "proto/pms/events/v1"

// platformProto is the one proto package pkg/platform may use.
const platformProto = "proto/pms/events/v1"

// segments splits a module-relative path into its first two segments.
func segments(p string) (string, string) {
	parts := strings.SplitN(p, "/", 3)
	switch len(parts) {
	case 1:
		return parts[0], ""
	default:
		return parts[0], parts[1]
	}
}

// serviceOf returns the service a package belongs to (pkg/patient/x → patient), or "".
func serviceOf(p string) string {
	top, second := segments(p)
	if top != "pkg" || second == "" || slices.Contains(notServices, second) {
		return ""
	}
	return second
}

// transportOf returns the transport a package belongs to (transport/http → http), or "" for
// packages outside transport/ and the neutral ones.
func transportOf(p string) string {
	top, second := segments(p)
	if top != "transport" || second == "" || slices.Contains(neutralTransports, second) {
		return ""
	}
	return second
}

func isNeutral(p string) bool {
	top, second := segments(p)
	return top == "transport" && slices.Contains(neutralTransports, second)
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// violation returns why package from may not depend on package to ("" when it may).
func violation(from, to string) string {
	if under(to, "cmd") && !under(from, "cmd") {
		return "nothing outside cmd/ imports cmd/"
	}
	switch {
	case serviceOf(from) != "":
		switch {
		case under(to, "transport"):
			return "a service never imports transport/"
		case under(to, "pkg/gateway"):
			return "a service never imports the gateway"
		case serviceOf(to) != "" && serviceOf(to) != serviceOf(from):
			return "a service never imports another service (declare the small interface it needs)"
		case under(to, "proto") && to != serviceProto:
			return "a service never imports an RPC stub (only " + serviceProto + ", its published language)"
		}
	case transportOf(from) != "":
		switch {
		case transportOf(to) != "" && transportOf(to) != transportOf(from):
			return "a transport never imports a sibling transport (share through transport/" + neutralTransports[0] + ")"
		case under(to, "pkg/gateway"):
			return "a transport never imports the gateway"
		}
	case isNeutral(from):
		switch {
		case transportOf(to) != "":
			return "the neutral wire package imports no transport: transports import it"
		case serviceOf(to) != "":
			return "the neutral wire package imports no service"
		case under(to, "pkg/gateway"):
			return "the neutral wire package never imports the gateway"
		}
	case under(from, "pkg/platform"):
		switch {
		case serviceOf(to) != "":
			return "pkg/platform never imports a service"
		case under(to, "transport"):
			return "pkg/platform never imports transport/"
		case under(to, "pkg/gateway"):
			return "pkg/platform never imports the gateway"
		case under(to, "proto") && to != platformProto:
			return "pkg/platform imports no proto package (but " + platformProto + ")"
		}
	}
	return ""
}

// listedPackage is what go list says of one package.
type listedPackage struct {
	ImportPath string
	ForTest    string
	Imports    []string
	Deps       []string
}

// listModule returns the module path and every package of the module with its imports and
// transitive dependencies, test variants included.
func listModule(t *testing.T) (string, []listedPackage) {
	t.Helper()
	mod, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	module := strings.TrimSpace(string(mod))
	cmd := exec.Command("go", "list", "-deps", "-test", "-json=ImportPath,ForTest,Imports,Deps", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.String())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return module, pkgs
}

// TestLayering fails when any package of the module breaks a layering rule (see violation),
// naming the import chain that does.
func TestLayering(t *testing.T) {
	module, pkgs := listModule(t)
	rel := func(path string) (string, bool) {
		path, _, _ = strings.Cut(path, " ") // "p [q.test]" is p as compiled for q's tests
		if path == module {
			return "", true
		}
		r, ok := strings.CutPrefix(path, module+"/")
		return r, ok
	}
	imports := map[string][]string{}     // module package → its module imports
	testImports := map[string][]string{} // the same with test variants' imports merged
	type node struct {
		path string
		test bool
		deps []string
	}
	var nodes []node
	for _, p := range pkgs {
		from, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		test := p.ForTest != "" || strings.HasSuffix(p.ImportPath, ".test")
		for _, imp := range p.Imports {
			to, ok := rel(imp)
			if !ok {
				continue
			}
			if !test && !slices.Contains(imports[from], to) {
				imports[from] = append(imports[from], to)
			}
			if !slices.Contains(testImports[from], to) {
				testImports[from] = append(testImports[from], to)
			}
		}
		var deps []string
		for _, d := range p.Deps {
			if to, ok := rel(d); ok && to != from {
				deps = append(deps, to)
			}
		}
		nodes = append(nodes, node{path: strings.TrimSuffix(from, ".test"), test: test, deps: deps})
	}

	var services, transports []string
	var problems []string
	seen := map[string]bool{}
	for _, n := range nodes {
		if s := serviceOf(n.path); !n.test && s != "" && !slices.Contains(services, s) {
			services = append(services, s)
		}
		if tr := transportOf(n.path); !n.test && tr != "" && !slices.Contains(transports, tr) {
			transports = append(transports, tr)
		}
		for _, d := range n.deps {
			// Tests are held to the cmd/ rule only: a test may wire what it tests to anything.
			if n.test && !(under(d, "cmd") && !under(n.path, "cmd")) {
				continue
			}
			why := violation(n.path, d)
			if why == "" {
				continue
			}
			graph := imports
			if n.test {
				graph = testImports
			}
			chain := importChain(graph, n.path, d)
			if key := strings.Join(chain, " → "); !seen[key] {
				seen[key] = true
				problems = append(problems, fmt.Sprintf("%s depends on %s (%s): %s", n.path, d, key, why))
			}
		}
	}
	// The rules classify by location: if nothing is a service or a transport any more, the
	// layout moved and the rules above check nothing.
	if len(services) < 2 || len(transports) < 2 {
		t.Fatalf("found services %v and transports %v: the layout changed, update the rules", services, transports)
	}
	t.Logf("services %v, transports %v, neutral %v", services, transports, neutralTransports)
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

// importChain is the shortest chain of imports from one package to another.
func importChain(imports map[string][]string, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append([]string{p}, chain...)
			}
			return chain
		}
		for _, next := range imports[p] {
			if _, ok := prev[next]; !ok {
				prev[next] = p
				queue = append(queue, next)
			}
		}
	}
	return []string{from, "…", to}
}

// TestLayeringRules checks the rules themselves on made-up edges, so a rule that stopped
// biting would be noticed even while the code obeys it.
func TestLayeringRules(t *testing.T) {
	for _, c := range []struct {
		from, to string
		allowed  bool
	}{
		{"pkg/patient", "pkg/platform/db", true},
		{"pkg/patient", "proto/pms/events/v1", true},
		{"pkg/patient", "pkg/patient/internal/x", true},
		{"pkg/patient", "transport/http", false},
		{"pkg/patient", "transport/wire", false},
		{"pkg/fhir", "transport/grpc", false},
		{"pkg/patient", "pkg/billing", false},
		{"pkg/billing", "proto/pms/billing/v1", false},
		{"pkg/analytics", "pkg/gateway", false},
		{"pkg/auth", "cmd/pms", false},
		{"transport/kafka", "transport/http", false},
		{"transport/nats", "transport/grpc", false},
		{"transport/kafka", "transport/wire", true},
		{"transport/kafka", "pkg/patient", true},
		{"transport/grpc", "proto/pms/patient/v1", true},
		{"transport/http", "pkg/gateway", false},
		{"transport/wire", "transport/http", false},
		{"transport/wire", "pkg/patient", false},
		{"transport/wire", "pkg/platform/errs", true},
		{"pkg/platform/outbox", "proto/pms/events/v1", true},
		{"pkg/platform/audit", "proto/pms/events/v1", true},
		{"pkg/platform/stack", "proto/pms/events/v1", true},
		{"pkg/platform/outbox", "proto/pms/patient/v1", false},
		{"pkg/platform/db", "proto/pms/patient/v1", false},
		{"pkg/platform/outbox", "pkg/patient", false},
		{"pkg/platform/db", "transport/wire", false},
		{"pkg/gateway", "transport/http", true},
		{"pkg/gateway", "pkg/patient", true},
		{"pkg/gateway", "cmd/pms", false},
		{"ops/faults", "cmd/pms", false},
		{"cmd/pms", "cmd/pms/internal/x", true},
		{"cmd/pms", "transport/kafka", true},
	} {
		if why := violation(c.from, c.to); (why == "") != c.allowed {
			t.Errorf("%s → %s: %q, want allowed %v", c.from, c.to, why, c.allowed)
		}
	}
}
