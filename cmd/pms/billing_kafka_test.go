package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
)

// TestBillingFollowsPatientsWhileItWasDown: `pms patient` runs without billing (its gRPC
// call to billing cannot happen) and registers a patient; `pms billing`, started afterwards
// on the same broker, reads the PATIENT_CREATED from the patient topic and opens the
// patient's account. Both as separate processes, on PostgreSQL and SQLite.
func TestBillingFollowsPatientsWhileItWasDown(t *testing.T) {
	for _, name := range databases(t) {
		t.Run(name, func(t *testing.T) {
			b := brokertest.Start(t)
			brokers := "--kafka-brokers=" + b.Addr()
			url := dbURLFor(t, name)
			pa, stopPatient := startPMS(t, patientAddrs, append(patientArgs(t, url), brokers)...)
			body := `{"name":"Grace","email":"grace@example.org","address":"1 Main St","dateOfBirth":"1990-12-09"}`
			req, _ := http.NewRequest(http.MethodPost, "http://"+pa["patient/http"]+"/patients", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+testIssuer.Token(t, "clin-1", authz.RoleClinician))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var created struct{ ID string }
			err = json.NewDecoder(resp.Body).Decode(&created)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 201 || created.ID == "" {
				t.Fatalf("create: %d", resp.StatusCode)
			}
			if err := stopPatient(); err != nil {
				t.Fatal(err)
			}

			accounts := func(a map[string]string) int {
				var out []map[string]any
				if code := doJSON(t, "GET", "http://"+a["billing/http"]+"/accounts?patientId="+created.ID, nil, &out); code != 200 {
					t.Fatalf("accounts: %d", code)
				}
				return len(out)
			}
			ba, stopBilling := startPMS(t, billingAddrs, billingArgs(t, url, brokers)...)
			deadline := time.Now().Add(30 * time.Second)
			for accounts(ba) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("billing opened no account for the patient registered while it was down")
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := stopBilling(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
