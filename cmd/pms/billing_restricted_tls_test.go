package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"

	"github.com/pms/pms/pkg/patient"
)

// TestRestrictedBillingOverMTLS: over mutual TLS, with a certificate per service (`pms all`
// with --<service>-tls-cert: each gRPC hop under the service's own identity) and with the one
// "all" certificate `pms all` shares otherwise, billing believes the patient service's word
// (x-pms-checked-by from spiffe://pms/patient, or pms all's own spiffe://pms/all): a
// restricted patient's invoices are refused on billing's own route through the gateway and
// served through the patient service under a break-glass grant.
func TestRestrictedBillingOverMTLS(t *testing.T) {
	certs := certsFor(t)
	var own []string
	for _, svc := range []string{"auth", "billing", "patient", "analytics", "gateway"} {
		own = append(own, "--"+svc+"-tls-cert="+filepath.Join(certs, svc+".pem"), "--"+svc+"-tls-key="+filepath.Join(certs, svc+"-key.pem"))
	}
	t.Run("own certificates", func(t *testing.T) { restrictedBillingOverTLS(t, certs, own) })
	t.Run("the shared all certificate", func(t *testing.T) { restrictedBillingOverTLS(t, certs, nil) })
}

func restrictedBillingOverTLS(t *testing.T, certs string, extra []string) {
	a, _ := startPMS(t, allAddrs, allArgs(t, "sqlite://"+filepath.Join(t.TempDir(), "pms.db"), append(tlsArgs(certs), extra...)...)...)
	c := httpsClient(t, certs)
	gw := "https://" + a["gateway/http"]
	do := func(method, path, token, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, gw+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, b := do("POST", "/auth/login", "", `{"email":"`+allAdminEmail+`","password":"`+adminPassword+`"}`)
	var pair struct{ Token string }
	if code != 200 || json.Unmarshal(b, &pair) != nil {
		t.Fatalf("login: %d %s", code, b)
	}
	admin := pair.Token
	code, b = do("POST", "/api/patients", admin, `{"name":"Ada Byron","email":"ada@example.org","address":"1 St","dateOfBirth":"1990-01-01"}`)
	var p patient.Patient
	if code != 201 || json.Unmarshal(b, &p) != nil {
		t.Fatalf("register: %d %s", code, b)
	}
	// The account is opened after the 201 (docs/billing.md): the invoice waits for it.
	polltest.Until(t, 30*time.Second, "the invoice of a just registered patient", func() bool {
		code, b = do("POST", "/api/billing/invoices", admin,
			`{"patientId":"`+p.ID+`","currency":"EUR","dueDate":"2026-12-31","lines":[{"description":"Consultation","quantity":1,"unitAmount":4000}]}`)
		if code != 201 && code != 404 {
			t.Fatalf("invoice: %d %s", code, b)
		}
		return code == 201
	})
	if code, b := do("PUT", "/api/patients/"+p.ID+"/confidentiality", admin, `{"confidentiality":"restricted"}`); code != 200 {
		t.Fatalf("restrict: %d %s", code, b)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		code, b := do("GET", "/api/billing/invoices?patientId="+p.ID, admin, "")
		if code == 403 && strings.Contains(string(b), `"restricted"`) {
			break
		}
		if code != 200 || time.Now().After(deadline) {
			t.Fatalf("billing's route after the restriction: %d %s", code, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, b := do("POST", "/api/patients/"+p.ID+"/break-glass", admin, `{"reason":"billing dispute on admission"}`); code != 201 {
		t.Fatalf("break-glass: %d %s", code, b)
	}
	if code, b := do("GET", "/api/patients/"+p.ID+"/invoices", admin, ""); code != 200 || !strings.Contains(string(b), "Consultation") {
		t.Fatalf("invoices through the patient service over mTLS: %d %s", code, b)
	}
}
