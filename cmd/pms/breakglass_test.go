package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	grpctransport "github.com/pms/pms/transport/grpc"
	httptransport "github.com/pms/pms/transport/http"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// TestBreakGlassJourney runs `pms all` and walks break-glass as its users would: an admin
// restricts a record through the gateway; a clinician is refused (403 naming break-glass)
// and sees a stub in a search, is refused a grant without a reason (400), breaks the glass
// with one (201) and reads; over gRPC a second clinician is refused, then breaks the glass
// and reads; clinicians may not restrict or review; the review lists both grants with their
// reads; the audit topic carries BREAK_GLASS events; the metric counts both grants.
func TestBreakGlassJourney(t *testing.T) {
	a, _ := startPMS(t, allAddrs, allArgs(t, "")...)
	gw := "http://" + a["gateway/http"]
	admin := allToken(t, a)
	for _, email := range []string{"bg1@example.org", "bg2@example.org"} {
		if resp, b := call(t, "POST", gw+"/api/users", admin, `{"email":"`+email+`","password":"`+matrixPassword+`","role":"clinician"}`); resp.StatusCode != 201 {
			t.Fatalf("create %s: %d %s", email, resp.StatusCode, b)
		}
	}
	login := func(email string) string {
		resp, b := call(t, "POST", gw+"/auth/login", "", `{"email":"`+email+`","password":"`+matrixPassword+`"}`)
		var p struct{ Token string }
		if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("login %s: %d %s", email, resp.StatusCode, b)
		}
		return p.Token
	}
	doc1, doc2 := login("bg1@example.org"), login("bg2@example.org")

	// REST through the gateway.
	resp, b := call(t, "POST", gw+"/api/patients", doc1, `{"name":"Grace Hopper","email":"grace@example.org","address":"1 Navy Rd","dateOfBirth":"1926-12-09"}`)
	var p patient.Patient
	if resp.StatusCode != 201 || json.Unmarshal(b, &p) != nil || p.Confidentiality != patient.ConfidentialityNormal {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	pp := gw + "/api/patients/" + p.ID
	if resp, b := call(t, "PUT", pp+"/confidentiality", doc1, `{"confidentiality":"restricted"}`); resp.StatusCode != 403 {
		t.Fatalf("restrict as clinician: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "PUT", pp+"/confidentiality", admin, `{"confidentiality":"restricted"}`); resp.StatusCode != 200 || !strings.Contains(string(b), `"confidentiality":"restricted"`) {
		t.Fatalf("restrict: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "GET", pp, doc1, ""); resp.StatusCode != 403 || !strings.Contains(string(b), "break-glass") {
		t.Fatalf("read without a grant: %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "GET", gw+"/api/patients?email=grace@example.org", doc1, "")
	var page []patient.Patient
	if resp.StatusCode != 200 || json.Unmarshal(b, &page) != nil || len(page) != 1 || page[0].Name != "" || page[0].MRN != p.MRN {
		t.Fatalf("search without a grant: %d %s", resp.StatusCode, b)
	}
	for _, body := range []string{`{}`, `{"reason":"urgent"}`} {
		if resp, b := call(t, "POST", pp+"/break-glass", doc1, body); resp.StatusCode != 400 {
			t.Fatalf("break-glass %s: %d %s", body, resp.StatusCode, b)
		}
	}
	resp, b = call(t, "POST", pp+"/break-glass", doc1, `{"reason":"unconscious patient in A&E"}`)
	var g patient.Grant
	if resp.StatusCode != 201 || json.Unmarshal(b, &g) != nil || g.PatientID != p.ID || g.Role != authz.RoleClinician ||
		g.ExpiresAt.Sub(g.CreatedAt) != patient.DefaultBreakGlassTTL {
		t.Fatalf("break-glass: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "GET", pp, doc1, ""); resp.StatusCode != 200 || !strings.Contains(string(b), "Grace Hopper") {
		t.Fatalf("read under the grant: %d %s", resp.StatusCode, b)
	}

	// gRPC, straight to the patient service, as the second clinician.
	conn, err := grpc.NewClient(a["patient/grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := grpctransport.NewPatientClient(conn)
	ctx, cancel := context.WithTimeout(authz.WithToken(context.Background(), doc2), 30*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, p.ID); !errors.Is(err, patient.ErrRestricted) || !strings.Contains(err.Error(), "break-glass") {
		t.Fatalf("gRPC read without a grant: %v", err)
	}
	if _, err := c.BreakGlass(ctx, patient.BreakGlassRequest{ID: p.ID}); errs.KindOf(err) != errs.InvalidArgument {
		t.Fatalf("gRPC break-glass without a reason: %v", err)
	}
	if _, err := c.SetConfidentiality(ctx, patient.ConfidentialityRequest{ID: p.ID, Confidentiality: "normal"}); errs.KindOf(err) != errs.PermissionDenied {
		t.Fatalf("gRPC unrestrict as clinician: %v", err)
	}
	if _, err := c.BreakGlassGrants(ctx, patient.GrantQuery{}); errs.KindOf(err) != errs.PermissionDenied {
		t.Fatalf("gRPC review as clinician: %v", err)
	}
	g2, err := c.BreakGlass(ctx, patient.BreakGlassRequest{ID: p.ID, Reason: "cardiac arrest, ward 4"})
	if err != nil || g2.UserID == g.UserID {
		t.Fatalf("gRPC break-glass: %+v %v", g2, err)
	}
	if got, err := c.Get(ctx, p.ID); err != nil || got.Name != "Grace Hopper" || got.Confidentiality != patient.ConfidentialityRestricted {
		t.Fatalf("gRPC read under the grant: %+v %v", got, err)
	}

	// The review, over REST through the gateway and over gRPC as admin.
	resp, b = call(t, "GET", gw+"/api/audit/break-glass?patientId="+p.ID, admin, "")
	var review []patient.GrantReview
	if resp.StatusCode != 200 || json.Unmarshal(b, &review) != nil || len(review) != 2 || review[0].ID != g2.ID || review[1].ID != g.ID {
		t.Fatalf("review: %d %s", resp.StatusCode, b)
	}
	for _, r := range review {
		var saw bool
		for _, e := range r.Reads {
			saw = saw || (e.Action == patient.ActionRead && e.Outcome == audit.OutcomeSuccess && e.Actor == r.UserID)
		}
		if !saw {
			t.Errorf("review of %s lacks the holder's read: %+v", r.UserID, r.Reads)
		}
	}
	adminCtx := authz.WithToken(ctx, admin)
	if r, err := c.BreakGlassGrants(adminCtx, patient.GrantQuery{PatientID: p.ID, UserID: g2.UserID}); err != nil || len(r) != 1 || r[0].Reason != "cardiac arrest, ward 4" {
		t.Fatalf("gRPC review: %+v %v", r, err)
	}

	// The audit topic: the grants are BREAK_GLASS events.
	auditR := brokertest.NewReader(t, a["broker/kafka"], kafkatransport.TopicAudit)
	seen := map[string]bool{}
	for len(seen) < 2 {
		readUntil(t, auditR, func(m *sarama.ConsumerMessage) bool {
			switch brokertest.Header(m, "event-type") {
			case audit.EventType, audit.BreakGlassEventType:
			default:
				return false // a signed checkpoint
			}
			var ae eventsv1.AuditEvent
			if err := proto.Unmarshal(m.Value, &ae); err != nil {
				t.Fatalf("audit event: %v", err)
			}
			if ae.Action != audit.ActionBreakGlass || ae.Outcome != audit.OutcomeSuccess {
				return false
			}
			if h := brokertest.Header(m, "event-type"); h != audit.BreakGlassEventType || ae.SubjectId != p.ID {
				t.Fatalf("break-glass event with event-type %q about %q", h, ae.SubjectId)
			}
			seen[ae.Actor] = true
			return true
		})
	}
	// The metric the alert watches.
	resp, b = call(t, "GET", "http://"+a["patient/admin"]+"/metrics", "", "")
	if !strings.Contains(string(b), `pms_patient_break_glass_total{result="ok"} 2`) {
		t.Fatalf("metrics lack two break-glass grants: %d", resp.StatusCode)
	}
}

// TestBreakGlassExpiry runs `pms patient` with --patient-break-glass-ttl=1s on PostgreSQL:
// a grant ends on its own, and the holder is refused again (403 naming break-glass), over
// HTTP and gRPC. The wait polls with a deadline.
func TestBreakGlassExpiry(t *testing.T) {
	a, _ := startPMS(t, patientAddrs, append(patientArgs(t, dbtest.PostgresDatabase(t)), "--patient-break-glass-ttl=1s")...)
	hc, err := httptransport.NewPatientClient("http://"+a["patient/http"], httptransport.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(a["patient/grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin, doc := authed(t, "admin-1", authz.RoleAdmin), authed(t, "doc-1", authz.RoleClinician)
	p, err := hc.Create(doc, patient.CreateRequest{Name: "Short Grant", Email: "short@example.org", Address: "x", DateOfBirth: "1990-01-01"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hc.SetConfidentiality(admin, patient.ConfidentialityRequest{ID: p.ID, Confidentiality: patient.ConfidentialityRestricted}); err != nil {
		t.Fatal(err)
	}
	g, err := hc.BreakGlass(doc, patient.BreakGlassRequest{ID: p.ID, Reason: "unconscious patient in A&E"})
	if err != nil || g.ExpiresAt.Sub(g.CreatedAt) != time.Second {
		t.Fatalf("grant: %+v %v", g, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := hc.Get(doc, p.ID)
		if errors.Is(err, patient.ErrRestricted) {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the grant did not end within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := grpctransport.NewPatientClient(conn).Get(doc, p.ID); !errors.Is(err, patient.ErrRestricted) || !strings.Contains(err.Error(), "break-glass") {
		t.Fatalf("gRPC read after expiry: %v", err)
	}
}
