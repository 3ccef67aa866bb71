package faults_test

import (
	"testing"
	"time"

	"github.com/pms/pms/ops/cluster"
)

// TestClientsHangUp: against separate processes, 50 clients hang up mid-request through the
// gateway — reads, searches, creates, and reads the patient service answers by asking billing
// (billing account, invoices) — then ordinary requests all answer 2xx, neither the gateway →
// patient breaker nor the patient → billing breaker opened, and every patient has its create
// audit entry (issue 13).
func TestClientsHangUp(t *testing.T) {
	s := setup(t)
	gw := s.c.Gateway()
	ids := cluster.SeedPatients(t, gw, s.token, 300)
	if err := cluster.HangUps(gw, s.token, cluster.HangUpMix(50, ids, "cluster", true), 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	cluster.CheckAfterHangUps(t, gw, s.c.URL("gateway/admin"), s.token, ids, true, map[string]string{
		s.c.URL("gateway/admin"): `pms_gateway_breaker_state{upstream="patient"}`,
		s.c.URL("patient/admin"): `pms_patient_billing_breaker_state`,
	})
}
