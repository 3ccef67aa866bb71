package httptransport

import (
	"strconv"
	"strings"
	"time"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
)

// This file is the one place a patient record and a FHIR R4 Patient resource are mapped
// (docs/fhir.md, "Mapping"): toFHIR and fromFHIR. A field the patient service gains is one
// line in each.

// MRNSystem is the identifier system of the platform's medical record numbers: a FHIR
// Patient.identifier with this system carries the MRN (patient.SystemMRN, named once).
const MRNSystem = patient.SystemMRN

// confidentialitySystem is the HL7 v3 Confidentiality code system, in which a restricted
// record is R and a normal one N (Patient.meta.security).
const confidentialitySystem = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

// fhirPatient is the FHIR R4 Patient resource with the elements the facade reads and writes.
// Decoding is strict: an element not listed here is refused (400) rather than dropped.
type fhirPatient struct {
	ResourceType string           `json:"resourceType"`
	ID           string           `json:"id,omitempty"`
	Meta         *fhirMeta        `json:"meta,omitempty"`
	Text         *fhirNarrative   `json:"text,omitempty"`
	Identifier   []fhirIdentifier `json:"identifier,omitempty"`
	Active       *bool            `json:"active,omitempty"`
	Name         []fhirHumanName  `json:"name,omitempty"`
	Telecom      []fhirContact    `json:"telecom,omitempty"`
	Gender       string           `json:"gender,omitempty"`
	BirthDate    string           `json:"birthDate,omitempty"`
	Address      []fhirAddress    `json:"address,omitempty"`
	// Link is read-only: a merged record's replaced-by link to its survivor (toFHIR).
	Link []fhirPatientLink `json:"link,omitempty"`
}

// fhirPatientLink is Patient.link: the other record and how it relates ("replaced-by").
type fhirPatientLink struct {
	Other fhirReference `json:"other"`
	Type  string        `json:"type"`
}

type fhirMeta struct {
	VersionID   string       `json:"versionId,omitempty"`
	LastUpdated string       `json:"lastUpdated,omitempty"`
	Security    []fhirCoding `json:"security,omitempty"`
}

type fhirNarrative struct {
	Status string `json:"status"`
	Div    string `json:"div"`
}

type fhirCoding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type fhirIdentifier struct {
	Use    string `json:"use,omitempty"`
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
}

type fhirHumanName struct {
	Use    string   `json:"use,omitempty"`
	Text   string   `json:"text,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
}

type fhirContact struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
	Use    string `json:"use,omitempty"`
}

type fhirAddress struct {
	Use        string   `json:"use,omitempty"`
	Text       string   `json:"text,omitempty"`
	Line       []string `json:"line,omitempty"`
	City       string   `json:"city,omitempty"`
	State      string   `json:"state,omitempty"`
	PostalCode string   `json:"postalCode,omitempty"`
	Country    string   `json:"country,omitempty"`
}

// toFHIR maps a patient record to its FHIR Patient resource.
func toFHIR(p patient.Patient) fhirPatient {
	conf := "N"
	if p.Confidentiality == "restricted" {
		conf = "R"
	}
	r := fhirPatient{
		ResourceType: "Patient",
		ID:           p.ID,
		Meta: &fhirMeta{
			VersionID:   strconv.FormatInt(p.Version, 10),
			LastUpdated: fhirInstant(p.UpdatedAt),
			Security:    []fhirCoding{{System: confidentialitySystem, Code: conf}},
		},
		BirthDate: p.DateOfBirth,
		Gender:    p.Gender,
	}
	if p.MRN != "" {
		r.Identifier = []fhirIdentifier{{Use: "usual", System: MRNSystem, Value: p.MRN}}
	}
	for _, id := range p.Identifiers {
		if id.System != MRNSystem { // the MRN is the first, above
			r.Identifier = append(r.Identifier, fhirIdentifier{System: id.System, Value: id.Value})
		}
	}
	if p.Name != "" || p.Family != "" || len(p.Given) > 0 {
		r.Name = []fhirHumanName{{Text: p.Name, Family: p.Family, Given: p.Given}}
	}
	if p.Email != "" {
		r.Telecom = append(r.Telecom, fhirContact{System: "email", Value: p.Email})
	}
	if p.Phone != "" {
		r.Telecom = append(r.Telecom, fhirContact{System: "phone", Value: p.Phone})
	}
	if p.Address != "" {
		r.Address = []fhirAddress{{Text: p.Address}}
	}
	if p.MergedInto != "" {
		// A merged record (POST /api/patients/{id}/merge) is no longer in use: replaced by
		// its survivor.
		inactive := false
		r.Active = &inactive
		r.Link = []fhirPatientLink{{Other: fhirReference{Reference: "Patient/" + p.MergedInto}, Type: "replaced-by"}}
	}
	return r
}

// fhirInstant writes an instant as FHIR's instant type wants it (seconds required, a zone).
func fhirInstant(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// patientFields are the editable fields a FHIR Patient carries, and the MRN it may echo.
type patientFields struct {
	Name, Email, Address, DateOfBirth string
	Family, Gender, Phone             string
	Given                             []string
	Identifiers                       []patient.Identifier
	MRN                               *string
}

// fromFHIR reads the editable fields out of a Patient resource. What the service cannot hold
// (a second name, address, email or phone, another kind of contact) is refused as
// unprocessable (422) rather than silently dropped; the service judges the values. The
// structured name is HumanName's family and given, its text the display name (derived from
// them by the service when absent).
func fromFHIR(r fhirPatient) (patientFields, error) {
	var f patientFields
	var bad errs.Fields
	if r.ResourceType != "Patient" {
		return f, errs.Invalid(map[string]string{"resourceType": "must be Patient"})
	}
	switch len(r.Name) {
	case 0:
	case 1:
		n := r.Name[0]
		f.Name, f.Family, f.Given = n.Text, n.Family, n.Given
	default:
		bad.Add("name", "at most one name is supported")
	}
	for i, c := range r.Telecom {
		switch {
		case c.System == "email" && f.Email == "":
			f.Email = c.Value
		case c.System == "phone" && f.Phone == "":
			f.Phone = c.Value
		case c.System == "email" || c.System == "phone":
			bad.Add("telecom", "at most one "+c.System+" is supported")
		default:
			bad.Add("telecom["+strconv.Itoa(i)+"].system", "only email and phone are supported")
		}
	}
	f.Gender = r.Gender
	switch len(r.Address) {
	case 0:
	case 1:
		a := r.Address[0]
		f.Address = a.Text
		if f.Address == "" {
			var parts []string
			for _, s := range append(append([]string{}, a.Line...), a.City, a.State, a.PostalCode, a.Country) {
				if s = strings.TrimSpace(s); s != "" {
					parts = append(parts, s)
				}
			}
			f.Address = strings.Join(parts, ", ")
		}
	default:
		bad.Add("address", "at most one address is supported")
	}
	f.DateOfBirth = r.BirthDate
	if len(r.Link) > 0 {
		bad.Add("link", "is read-only: records are merged with POST /api/patients/{id}/merge")
	}
	for _, id := range r.Identifier {
		if id.System != MRNSystem {
			f.Identifiers = append(f.Identifiers, patient.Identifier{System: id.System, Value: id.Value})
			continue
		}
		v := id.Value
		f.MRN = &v
	}
	if err := bad.Err(); err != nil {
		return f, unprocessable(err)
	}
	return f, nil
}
