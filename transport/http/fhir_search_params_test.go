package httptransport

import (
	"net/url"
	"testing"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
)

// TestFHIRSearchDemographics: family, given, phone and gender reach the service's query;
// birthdate prefixes and precisions become inclusive bounds, several values narrow them;
// malformed dates, unknown prefixes and bad genders are 400, FHIR prefixes not served are
// ignored (lenient) or 400 (strict).
func TestFHIRSearchDemographics(t *testing.T) {
	for _, c := range []struct {
		query string
		want  patient.ListQuery
	}{
		{"family=Love&given=Ada&phone=%2B44+20&gender=female", patient.ListQuery{Family: "Love", Given: "Ada", Phone: "+44 20", Gender: "female"}},
		{"gender=http://hl7.org/fhir/administrative-gender|other", patient.ListQuery{Gender: "other"}},
		{"birthdate=1990-12-10", patient.ListQuery{BornFrom: "1990-12-10", BornTo: "1990-12-10"}},
		{"birthdate=eq1990-02", patient.ListQuery{BornFrom: "1990-02-01", BornTo: "1990-02-28"}},
		{"birthdate=eq2000-02", patient.ListQuery{BornFrom: "2000-02-01", BornTo: "2000-02-29"}},
		{"birthdate=1990", patient.ListQuery{BornFrom: "1990-01-01", BornTo: "1990-12-31"}},
		{"birthdate=lt1990", patient.ListQuery{BornTo: "1989-12-31"}},
		{"birthdate=le1990-06", patient.ListQuery{BornTo: "1990-06-30"}},
		{"birthdate=gt1990-06", patient.ListQuery{BornFrom: "1990-07-01"}},
		{"birthdate=ge1990-06-15", patient.ListQuery{BornFrom: "1990-06-15"}},
		{"birthdate=ge1980&birthdate=lt1990&birthdate=gt1985-05-05", patient.ListQuery{BornFrom: "1985-05-06", BornTo: "1989-12-31"}},
		{"birthdate=lt1980&birthdate=gt1990", patient.ListQuery{BornFrom: "1991-01-01", BornTo: "1979-12-31"}},
		{"birthdate=gt9999-12-31", patient.ListQuery{BornFrom: "9999-12-31", BornTo: "0001-01-01"}},
		{"birthdate=lt0001-01-01", patient.ListQuery{BornFrom: "9999-12-31", BornTo: "0001-01-01"}},
	} {
		v, _ := url.ParseQuery(c.query)
		sr, err := parseSearch(v, true, false)
		if err != nil || sr.Query != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.query, sr.Query, err, c.want)
		}
	}
	for _, q := range []string{"gender=woman", "gender=urn:x|female", "birthdate=1990-13-01", "birthdate=1990-02-30", "birthdate=19900210",
		"birthdate=xx1990", "birthdate=EQ1990", "birthdate=1990-12-10T10:00:00Z", "birthdate=0000", "birthdate=%201990", "family=a&family=b"} {
		v, _ := url.ParseQuery(q)
		_, err := parseSearch(v, false, false)
		if e := errs.As(err); e == nil || e.Kind != errs.InvalidArgument {
			t.Errorf("%s: %v, want invalid", q, err)
		}
	}
	v, _ := url.ParseQuery("birthdate=ne1990&birthdate=ap1990")
	if sr, err := parseSearch(v, false, false); err != nil || len(sr.Ignored) != 2 || sr.Query != (patient.ListQuery{}) {
		t.Errorf("lenient ne/ap: %+v %v", sr, err)
	}
	if _, err := parseSearch(v, true, false); errs.KindOf(err) != errs.InvalidArgument {
		t.Errorf("strict ne/ap: %v", err)
	}
}
