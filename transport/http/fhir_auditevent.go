package httptransport

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/typed"
)

// FHIR AuditEvent (docs/fhir.md, "AuditEvent"): the accesses to one patient's record, its
// access log (GET /patients/{id}/access-log), searched by patient over the same endpoint, so
// its roles (admin, privacy) apply and the read is itself audited (access_log_read).

// Code systems of the AuditEvent mapping.
const (
	auditEventTypeSystem  = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	actReasonSystem       = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	securitySourceSystem  = "http://terminology.hl7.org/CodeSystem/security-source-type"
	entityTypeSystem      = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	objectRoleSystem      = "http://terminology.hl7.org/CodeSystem/object-role"
	pmsActionSystem       = "urn:pms:audit-action"
	pmsRoleSystem         = "urn:pms:role"
	pmsUserSystem         = "urn:pms:user"
	networkTypeIPAddress  = "2"
	sourceTypeApplication = "4"
)

// fhirAuditEvent is the FHIR R4 AuditEvent resource as the facade writes it.
type fhirAuditEvent struct {
	ResourceType   string                `json:"resourceType"`
	ID             string                `json:"id"`
	Type           fhirCoding            `json:"type"`
	Subtype        []fhirCoding          `json:"subtype,omitempty"`
	Action         string                `json:"action,omitempty"`
	Recorded       string                `json:"recorded"`
	Outcome        string                `json:"outcome,omitempty"`
	OutcomeDesc    string                `json:"outcomeDesc,omitempty"`
	PurposeOfEvent []fhirCodeableConcept `json:"purposeOfEvent,omitempty"`
	Agent          []fhirAuditAgent      `json:"agent"`
	Source         fhirAuditSource       `json:"source"`
	Entity         []fhirAuditEntity     `json:"entity,omitempty"`
}

type fhirAuditAgent struct {
	Role         []fhirCodeableConcept `json:"role,omitempty"`
	Who          *fhirReference        `json:"who,omitempty"`
	Requestor    bool                  `json:"requestor"`
	Network      *fhirAuditNetwork     `json:"network,omitempty"`
	PurposeOfUse []fhirCodeableConcept `json:"purposeOfUse,omitempty"`
}

type fhirAuditNetwork struct {
	Address string `json:"address,omitempty"`
	Type    string `json:"type,omitempty"`
}

type fhirAuditSource struct {
	Observer fhirReference `json:"observer"`
	Type     []fhirCoding  `json:"type,omitempty"`
}

type fhirAuditEntity struct {
	What   *fhirReference    `json:"what,omitempty"`
	Type   *fhirCoding       `json:"type,omitempty"`
	Role   *fhirCoding       `json:"role,omitempty"`
	Detail []fhirAuditDetail `json:"detail,omitempty"`
}

type fhirAuditDetail struct {
	Type        string `json:"type"`
	ValueString string `json:"valueString"`
}

// auditActions maps the patient service's audited actions to FHIR's audit-event-action:
// C create, R read (reads, searches, histories, the access log and audit reads), U update, D
// delete, E execute (anything else: confidentiality, break-glass review, confirmations).
var auditActions = map[string]string{
	patient.ActionCreate: "C", patient.ActionRead: "R", patient.ActionSearch: "R", patient.ActionHistory: "R",
	patient.ActionBillingAccount: "R", patient.ActionInvoices: "R", patient.ActionAccessLogRead: "R", patient.ActionAuditRead: "R",
	patient.ActionUpdate: "U", patient.ActionDelete: "D", patient.ActionErase: "D",
}

// auditOutcomes maps the audit log's outcomes to FHIR's audit-event-outcome: 0 success, 4
// minor failure (the caller's: denied, rejected, not found), 8 serious failure (ours).
var auditOutcomes = map[string]string{
	audit.OutcomeSuccess: "0", audit.OutcomeDenied: "4", audit.OutcomeRejected: "4", audit.OutcomeNotFound: "4", audit.OutcomeError: "8",
}

// emergencyPurpose is the purpose of a break-glass access: emergency treatment (ETREAT) by
// breaking the glass (BTG), HL7 v3 ActReason.
var emergencyPurpose = []fhirCodeableConcept{{Coding: []fhirCoding{
	{System: actReasonSystem, Code: "ETREAT", Display: "Emergency Treatment"},
	{System: actReasonSystem, Code: "BTG", Display: "break the glass"},
}}}

// accessToFHIR maps one access to patientID's record.
func accessToFHIR(patientID string, r patient.AccessRecord) fhirAuditEvent {
	ev := fhirAuditEvent{ResourceType: "AuditEvent", ID: r.EntryID,
		Type:     fhirCoding{System: auditEventTypeSystem, Code: "rest", Display: "RESTful Operation"},
		Subtype:  []fhirCoding{{System: pmsActionSystem, Code: r.Action}},
		Action:   auditActions[r.Action],
		Recorded: fhirInstant(r.At),
		Outcome:  auditOutcomes[r.Outcome], OutcomeDesc: r.Outcome,
		Source: fhirAuditSource{Observer: fhirReference{Display: "PMS patient service"},
			Type: []fhirCoding{{System: securitySourceSystem, Code: sourceTypeApplication, Display: "Application Server"}}},
	}
	if ev.Action == "" {
		ev.Action = "E"
	}
	agent := fhirAuditAgent{Requestor: true}
	if r.Actor != "" {
		agent.Who = &fhirReference{Identifier: &fhirIdentifier{System: pmsUserSystem, Value: r.Actor}}
	}
	if r.Role != "" {
		agent.Role = []fhirCodeableConcept{{Coding: []fhirCoding{{System: pmsRoleSystem, Code: r.Role}}}}
	}
	if r.ClientAddress != "" {
		agent.Network = &fhirAuditNetwork{Address: r.ClientAddress, Type: networkTypeIPAddress}
	}
	if r.Emergency {
		agent.PurposeOfUse = emergencyPurpose
		ev.PurposeOfEvent = emergencyPurpose
	}
	ev.Agent = []fhirAuditAgent{agent}
	entity := fhirAuditEntity{What: &fhirReference{Reference: "Patient/" + patientID},
		Type: &fhirCoding{System: entityTypeSystem, Code: "1", Display: "Person"},
		Role: &fhirCoding{System: objectRoleSystem, Code: "1", Display: "Patient"}}
	if r.Position > 0 {
		entity.Detail = append(entity.Detail, fhirAuditDetail{Type: "position", ValueString: strconv.Itoa(r.Position)})
	}
	if r.Transport != "" {
		entity.Detail = append(entity.Detail, fhirAuditDetail{Type: "transport", ValueString: r.Transport})
	}
	if r.RequestID != "" {
		entity.Detail = append(entity.Detail, fhirAuditDetail{Type: "requestId", ValueString: r.RequestID})
	}
	ev.Entity = []fhirAuditEntity{entity}
	return ev
}

// decodeFHIRAuditEventSearch reads GET /AuditEvent?patient=Patient/{id}&_count= (or entity=).
func decodeFHIRAuditEventSearch(_ context.Context, r *http.Request) (resourceSearch, error) {
	return parseResourceSearch(r, "AuditEvent", nil)
}

// auditEventSearchResponse is a page of the access log with the search that read it.
type auditEventSearchResponse struct {
	Page patient.AccessLogPage
	Req  resourceSearch
}

// fhirAuditEvents serves an AuditEvent search over the access log endpoint.
func fhirAuditEvents(accessLog endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, req any) (any, error) {
		rs, ok := req.(resourceSearch)
		if !ok {
			return accessLog(ctx, req) // a rejected request: the guard answers first
		}
		pg, err := typed.Call[patient.AccessLogPage](ctx, accessLog, patient.AccessLogQuery{PatientID: rs.PatientID,
			Limit: min(rs.Count, patient.MaxLimit), PageToken: rs.PageToken})
		if err != nil {
			return nil, err
		}
		return auditEventSearchResponse{Page: pg, Req: rs}, nil
	}
}

func encodeFHIRAuditEvents(ctx context.Context, _ http.Header, r auditEventSearchResponse) (int, any, error) {
	ids := make([]string, len(r.Page.Records))
	res := make([]any, len(r.Page.Records))
	pid := strings.ToLower(r.Req.PatientID)
	for i, rec := range r.Page.Records {
		ids[i], res[i] = rec.EntryID, accessToFHIR(pid, rec)
	}
	// No AuditEvent read is served, so the entries have no fullUrl to read them at.
	return http.StatusOK, resourceBundle(ctx, r.Req, r.Page.NextPageToken, ids, res, false), nil
}
