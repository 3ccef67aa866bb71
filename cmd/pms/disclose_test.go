package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSearchInAccessLogThroughGateway is issue 17's proof end to end, on `pms all` through
// the gateway: a clinician's POST search that returned a patient shows up in that patient's
// access log (read by a privacy officer), as JSON and as CSV, with position and transport
// (http: how the clinician reached the platform, not the gateway's gRPC hop);
// the search terms are in no URL.
//
// With --gateway-in-process (issue 20 item 3) the gateway wraps the services' endpoint sets
// in the process instead of dialling them: the same journey gives the same answers, roles and
// access log.
func TestSearchInAccessLogThroughGateway(t *testing.T) {
	for _, mode := range []string{"grpc", "in-process"} {
		t.Run(mode, func(t *testing.T) {
			args := allArgs(t, "", "--rate-limit=0")
			if mode == "in-process" {
				args = append(args, "--gateway-in-process")
			}
			a := searchInAccessLog(t, args)
			// The patient service saw the calls over gRPC from the gateway, or in the process
			// with the gateway's HTTP transport: its request metrics say which.
			_, metrics := call(t, "GET", "http://"+a["patient/admin"]+"/metrics", "", "")
			hop := `method="CreatePatient",transport="grpc"`
			if mode == "in-process" {
				hop = `method="CreatePatient",transport="http"`
			}
			if !strings.Contains(string(metrics), hop) {
				t.Fatalf("the patient service's metrics lack %s", hop)
			}
		})
	}
}

// searchInAccessLog runs the journey on `pms all` started with args and returns its addresses.
func searchInAccessLog(t *testing.T, args []string) map[string]string {
	a, _ := startPMS(t, allAddrs, args...)
	admin := allToken(t, a)
	gw := "http://" + a["gateway/http"]
	login := func(role string) string {
		if resp, b := call(t, "POST", gw+"/api/users", admin, `{"email":"`+role+`@example.org","password":"`+matrixPassword+`","role":"`+role+`"}`); resp.StatusCode != 201 {
			t.Fatalf("create %s: %d %s", role, resp.StatusCode, b)
		}
		resp, b := call(t, "POST", gw+"/auth/login", "", `{"email":"`+role+`@example.org","password":"`+matrixPassword+`"}`)
		var p struct{ Token string }
		if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("login %s: %d %s", role, resp.StatusCode, b)
		}
		return p.Token
	}
	clin, priv := login("clinician"), login("privacy")
	resp, b := call(t, "POST", gw+"/api/patients", clin, `{"name":"Quentin Disclosed","email":"qd@example.org","address":"1 Main St","dateOfBirth":"1970-05-06"}`)
	var p struct{ ID string }
	if resp.StatusCode != 201 || json.Unmarshal(b, &p) != nil {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "POST", gw+"/api/patients/_search", clin, `{"q":"Quentin"}`)
	if resp.StatusCode != 200 || !strings.Contains(string(b), p.ID) || resp.Header.Get("X-Total-Count") != "1" {
		t.Fatalf("search: %d %s", resp.StatusCode, b)
	}
	// The clinician may not read the access log; the privacy officer may not read the record.
	if resp, _ := call(t, "GET", gw+"/api/patients/"+p.ID+"/access-log", clin, ""); resp.StatusCode != 403 {
		t.Fatalf("clinician reads the access log: %d", resp.StatusCode)
	}
	if resp, _ := call(t, "GET", gw+"/api/patients/"+p.ID, priv, ""); resp.StatusCode != 403 {
		t.Fatalf("privacy reads the record: %d", resp.StatusCode)
	}
	resp, b = call(t, "GET", gw+"/api/patients/"+p.ID+"/access-log", priv, "")
	var log []struct {
		Action, Role, Transport string
		Position                int
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &log) != nil || len(log) < 2 {
		t.Fatalf("access log: %d %s", resp.StatusCode, b)
	}
	if log[0].Action != "search" || log[0].Role != "clinician" || log[0].Position != 1 || log[0].Transport != "http" {
		t.Fatalf("newest access = %+v (%s)", log[0], b)
	}
	resp, b = call(t, "GET", gw+"/api/patients/"+p.ID+"/access-log", priv, "", "Accept", "text/csv")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(string(b), "entryId,at,actor,role,action,") || !strings.Contains(string(b), ",clinician,search,success,1,") {
		t.Fatalf("csv: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	return a
}
