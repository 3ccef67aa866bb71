package patient

import (
	"strconv"

	"github.com/pms/pms/pkg/platform/jsonw"
)

// AppendJSON appends p as encoding/json writes it under Patient's field tags, without
// reflection (jsonw says why). A field added to Patient must be added here too:
// TestAppendJSONMatchesEncodingJSON fills every field and fails until it is.
func (p Patient) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = jsonw.String(b, p.ID)
	b = append(b, `,"mrn":`...)
	b = jsonw.String(b, p.MRN)
	b = append(b, `,"name":`...)
	b = jsonw.String(b, p.Name)
	b = append(b, `,"family":`...)
	b = jsonw.String(b, p.Family)
	b = append(b, `,"given":`...)
	b = jsonw.Strings(b, p.Given)
	b = append(b, `,"gender":`...)
	b = jsonw.String(b, p.Gender)
	b = append(b, `,"phone":`...)
	b = jsonw.String(b, p.Phone)
	b = append(b, `,"identifiers":`...)
	if p.Identifiers == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, id := range p.Identifiers {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"system":`...)
			b = jsonw.String(b, id.System)
			b = append(b, `,"value":`...)
			b = jsonw.String(b, id.Value)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"email":`...)
	b = jsonw.String(b, p.Email)
	b = append(b, `,"address":`...)
	b = jsonw.String(b, p.Address)
	b = append(b, `,"dateOfBirth":`...)
	b = jsonw.String(b, p.DateOfBirth)
	b = append(b, `,"registeredDate":`...)
	b = jsonw.String(b, p.RegisteredDate)
	b = append(b, `,"confidentiality":`...)
	b = jsonw.String(b, p.Confidentiality)
	if p.MergedInto != "" { // omitempty
		b = append(b, `,"mergedInto":`...)
		b = jsonw.String(b, p.MergedInto)
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, p.Version, 10)
	b = append(b, `,"createdAt":`...)
	b = jsonw.Time(b, p.CreatedAt)
	b = append(b, `,"updatedAt":`...)
	b = jsonw.Time(b, p.UpdatedAt)
	return append(b, '}')
}

// Patients is a list of records that encodes itself (Patient.AppendJSON); a search page's
// body is one.
type Patients []Patient

// AppendJSON appends ps as a JSON array (null when nil, as encoding/json writes it).
func (ps Patients) AppendJSON(b []byte) []byte {
	if ps == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = ps[i].AppendJSON(b)
	}
	return append(b, ']')
}
