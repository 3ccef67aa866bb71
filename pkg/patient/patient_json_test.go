package patient_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/pms/pms/pkg/patient"
)

// TestAppendJSONMatchesEncodingJSON: the hand-written encoding of a record is byte for byte
// what encoding/json writes, for records with every field set (by reflection, so a field
// added to Patient and not to AppendJSON fails here), with lists nil, empty and full, and
// with strings encoding/json escapes.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "Ada", `a "quoted" \ name`, "<b>&</b>", "tab\tnl\n", "Zoë 日本 \U0001F600", "bad\xff", "x\u2028y", "\x01"}
	str := func() string { return strs[rng.IntN(len(strs))] }
	for i := range 300 {
		var p patient.Patient
		v := reflect.ValueOf(&p).Elem()
		for f := range v.NumField() {
			fv := v.Field(f)
			switch fv.Interface().(type) {
			case string:
				fv.SetString(str())
			case int64, int:
				fv.SetInt(rng.Int64N(1 << 40))
			case time.Time:
				fv.Set(reflect.ValueOf(time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).UTC()))
			case []string:
				if n := rng.IntN(4); n > 0 || i%3 == 0 {
					ss := make([]string, n)
					for j := range ss {
						ss[j] = str()
					}
					fv.Set(reflect.ValueOf(ss))
				}
			case []patient.Identifier:
				if n := rng.IntN(4); n > 0 || i%3 == 0 {
					ids := make([]patient.Identifier, n)
					for j := range ids {
						ids[j] = patient.Identifier{System: str(), Value: str()}
					}
					fv.Set(reflect.ValueOf(ids))
				}
			default:
				t.Fatalf("Patient.%s has type %s, which this test cannot fill: teach it, and AppendJSON", v.Type().Field(f).Name, fv.Type())
			}
		}
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON\n%s\nencoding/json\n%s", got, want)
		}
		page := patient.Patients{p, p.WithLists()}
		want, _ = json.Marshal([]patient.Patient(page))
		if got := page.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("Patients.AppendJSON\n%s\nencoding/json\n%s", got, want)
		}
	}
	if got := patient.Patients(nil).AppendJSON(nil); string(got) != "null" {
		t.Fatalf("nil page = %s", got)
	}
}
