package outbox

import (
	"encoding/json"
	"maps"
	"testing"
)

// FuzzRecordHeaders: whatever a row's headers hold, recordHeaders agrees with encoding/json:
// it fails exactly when json.Unmarshal into a map fails, and otherwise gives the same
// headers (a repeated key: the last one, as the map keeps).
func FuzzRecordHeaders(f *testing.F) {
	for _, m := range []map[string]string{nil, {"event-id": "e-1", "event-type": "patient.updated", "request-id": "r"},
		{"a": `quote " and \ slash`}, {"ü": "naïve", "tab": "\t"}, {"": ""}} {
		s, err := encodeHeaders(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
	}
	for _, s := range []string{`{"a":"1","a":"2"}`, `{"a":1}`, `{"a":"1",}`, `{ "a":"1"}`, `{"a":"1"}x`, `[]`, `{"a":"\u00e9"}`, "{\"a\":\"\xff\"}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want map[string]string
		wantErr := json.Unmarshal([]byte(s), &want)
		got, err := recordHeaders(s)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: recordHeaders error %v, encoding/json %v", s, err, wantErr)
		}
		if err != nil {
			return
		}
		m := map[string]string{}
		for _, h := range got {
			m[string(h.Key)] = string(h.Value)
		}
		if want == nil {
			want = map[string]string{} // "null"
		}
		if !maps.Equal(m, want) {
			t.Fatalf("%q: recordHeaders %v, encoding/json %v", s, m, want)
		}
	})
}
