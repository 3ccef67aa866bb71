package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"
)

// waitAccount polls billing (its base URL: the service's own or the gateway's /api/billing)
// until patient id has its account. The account is opened after the registration answered,
// in the background and from the patient topic (docs/billing.md, "Accounts"), so a test that
// bills a patient it has just registered waits for it, with a deadline.
func waitAccount(t *testing.T, client *http.Client, billingBase, token, id string) {
	t.Helper()
	polltest.Until(t, 30*time.Second, "the billing account of "+id, func() bool {
		resp, b := callWith(t, client, "GET", billingBase+"/accounts?patientId="+id, token, "")
		var accounts []struct{ ID string }
		if resp.StatusCode != 200 || json.Unmarshal(b, &accounts) != nil {
			t.Fatalf("accounts of %s: %d %s", id, resp.StatusCode, b)
		}
		return len(accounts) == 1
	})
}
