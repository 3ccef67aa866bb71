package kafkatransport_test

import (
	"context"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"google.golang.org/protobuf/proto"
)

// TestPatientCommandDuplicates: CreatePatient over patient.commands carries the duplicate
// check like REST: prefer: duplicate-check=strict refuses a registration of someone
// registered with 409 possible_duplicate, whose reply names the candidates by id and score
// only (a reply topic cannot be erased, so no PHI and no reasons); x-confirm-not-duplicate
// lets it through; without the preference the 201 reply carries possibleDuplicates; a
// malformed prefer is 400.
func TestPatientCommandDuplicates(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		b := brokertest.Start(t)
		ensureTopics(t, b.Addr())
		newPatientStack(t, d, b.Addr(), true)
		c := &commander{t: t, p: newProducer(t, b.Addr()), replies: brokertest.NewReader(t, b.Addr(), "test.replies")}
		rt := []string{"reply-to", "test.replies"}
		body := `{"family":"Lovelace","given":["Ada"],"email":"ada@example.org","address":"1 Main St","dateOfBirth":"1915-12-10"}`
		status, first, _ := c.reply(c.send("CreatePatient", body, rt...))
		if status != 201 {
			t.Fatalf("create: %d %v", status, first)
		}
		again := strings.Replace(body, "ada@", "ada.king@", 1)
		status, refused, m := c.reply(c.send("CreatePatient", again, append(rt, "prefer", "duplicate-check=strict")...))
		cs, _ := refused["candidates"].([]any)
		if status != 409 || refused["error"] != "possible_duplicate" || len(cs) != 1 {
			t.Fatalf("strict: %d %v", status, refused)
		}
		cand := cs[0].(map[string]any)
		if cand["id"] != first["id"] || cand["score"].(float64) < 0.5 || len(cand) != 2 || strings.Contains(string(m.Value), "Lovelace") {
			t.Fatalf("the reply's candidate carries more than its id and score: %s", m.Value)
		}
		if status, e, _ := c.reply(c.send("CreatePatient", again, append(rt, "prefer", "duplicate-check=sometimes")...)); status != 400 || e["error"] != "invalid_argument" {
			t.Fatalf("bad prefer: %d %v", status, e)
		}
		status, ok, _ := c.reply(c.send("CreatePatient", again, append(rt, "prefer", "duplicate-check=strict", "x-confirm-not-duplicate", first["id"].(string))...))
		if status != 201 || ok["possibleDuplicates"] != 1.0 {
			t.Fatalf("confirmed: %d %v", status, ok)
		}
		status, warned, _ := c.reply(c.send("CreatePatient", strings.Replace(body, "ada@", "ada.l@", 1), rt...))
		if status != 201 || warned["possibleDuplicates"] != 2.0 {
			t.Fatalf("warn: %d %v", status, warned)
		}
	})
}

// TestAnalyticsDecodesPossibleDuplicates: the PATIENT_CREATED event's possible_duplicates
// reaches the analytics fold.
func TestAnalyticsDecodesPossibleDuplicates(t *testing.T) {
	v, _ := proto.Marshal(&eventsv1.PatientEvent{PatientId: "p", EventId: "e1", EventType: analytics.PatientCreated, PossibleDuplicates: 3})
	ev, err := kafkatransport.DecodeAnalyticsEvent(context.Background(), &sarama.ConsumerMessage{Topic: analytics.TopicPatient, Value: v})
	if err != nil || ev.(analytics.Event).PossibleDuplicates != 3 {
		t.Fatalf("%+v %v", ev, err)
	}
}
