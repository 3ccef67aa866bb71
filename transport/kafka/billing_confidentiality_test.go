package kafkatransport_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
)

// TestBillingConsumerKeepsConfidentiality: billing's consumer of the patient topic keeps each
// patient's confidentiality with the event's version — the PATIENT_UPDATED that restricts a
// record makes billing refuse its data, a late older event does not lift it — and an event
// with an unknown level is dead-lettered without blocking the partition.
func TestBillingConsumerKeepsConfidentiality(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		b := brokertest.Start(t)
		ensureBillingTopics(t, b.Addr())
		s := newBillingStack(t, d, b.Addr())
		p := newProducer(t, b.Addr())
		pid := uuid.NewString()
		ev := func(typ string, version int64, level string) string {
			v, err := proto.Marshal(&eventsv1.PatientEvent{PatientId: pid, EventType: typ, EventId: uuid.NewString(), Version: version, Confidentiality: level})
			if err != nil {
				t.Fatal(err)
			}
			return string(v)
		}
		// One key, so one partition, in this order; the dead letter is the sentinel.
		send(t, p, patient.TopicEvents, pid, ev(patient.EventCreated, 1, "normal"))
		send(t, p, patient.TopicEvents, pid, ev(patient.EventUpdated, 3, "restricted"))
		send(t, p, patient.TopicEvents, pid, ev(patient.EventUpdated, 2, "normal")) // late
		send(t, p, patient.TopicEvents, pid, ev(patient.EventUpdated, 4, "secret"))
		dls := brokertest.NewReader(t, b.Addr(), patient.TopicEvents+".dlq").Read(1, 30*time.Second)
		if len(dls) != 1 || brokertest.Header(dls[0], "dlq-error") != "invalid_argument" {
			t.Fatalf("dead letters %v", dls)
		}
		ctx := authz.WithPrincipal(context.Background(), authz.Principal{Subject: "u-1", Role: authz.RoleBilling})
		_, err := s.svc.ListAccounts(ctx, billing.AccountQuery{PatientID: pid})
		if errs.KindOf(err) != errs.Restricted {
			t.Fatalf("ListAccounts after the restricting and the late event = %v; want restricted", err)
		}
		var version int64
		if err := d.GetContext(context.Background(), &version, d.Rebind(`SELECT version FROM `+billing.ConfidentialityTable+` WHERE patient_id = ?`), pid); err != nil || version != 3 {
			t.Fatalf("kept version %d, %v; want 3", version, err)
		}
	})
}
