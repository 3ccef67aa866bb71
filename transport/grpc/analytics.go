package grpctransport

import (
	"context"
	"time"

	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"github.com/pms/pms/pkg/analytics"
	analyticsv1 "github.com/pms/pms/proto/pms/analytics/v1"
	billingv1 "github.com/pms/pms/proto/pms/billing/v1"
	"google.golang.org/grpc"
)

// RegisterAnalyticsServer serves the analytics endpoint set on s (a server from NewServer) as
// pms.analytics.v1.AnalyticsService.
func RegisterAnalyticsServer(s *grpc.Server, set analytics.Set) {
	analyticsv1.RegisterAnalyticsServiceServer(s, &analyticsServer{
		getSummary: kitgrpc.NewServer(set.GetSummaryEndpoint, total(summaryQueryFromPB), total(summaryToPB)),
		verify: kitgrpc.NewServer(set.VerifyAuditEndpoint, total(func(r *billingv1.VerifyAuditRequest) analytics.VerifyAuditRequest {
			return analytics.VerifyAuditRequest{AgainstTopic: r.GetAgainstTopic()}
		}), total(auditVerdictToPB)),
	})
}

// analyticsServer binds the go-kit handler of each method of AnalyticsService.
type analyticsServer struct {
	analyticsv1.UnimplementedAnalyticsServiceServer
	getSummary, verify kitgrpc.Handler
}

// VerifyAudit implements analyticsv1.AnalyticsServiceServer.
func (s *analyticsServer) VerifyAudit(ctx context.Context, r *billingv1.VerifyAuditRequest) (*billingv1.AuditVerdict, error) {
	return serve[*billingv1.AuditVerdict](ctx, s.verify, r)
}

// GetSummary implements analyticsv1.AnalyticsServiceServer.
func (s *analyticsServer) GetSummary(ctx context.Context, r *analyticsv1.GetSummaryRequest) (*analyticsv1.Summary, error) {
	return serve[*analyticsv1.Summary](ctx, s.getSummary, r)
}

// NewAnalyticsClient returns the analytics endpoint set over conn (for the gateway and
// tests), forwarding the request id, client address and bearer token as the other clients
// do; errors come back as the *errs.Error the server raised. Deadlines, retries and circuit
// breaking are the caller's policy: put them around the set with Set.Wrap.
func NewAnalyticsClient(conn *grpc.ClientConn) analytics.Set {
	c := clientFactory{conn: conn, service: analyticsv1.AnalyticsService_ServiceDesc.ServiceName}
	return analytics.Set{
		GetSummaryEndpoint: c.endpoint(analytics.MethodGetSummary, total(summaryQueryToPB), total(summaryFromPB), &analyticsv1.Summary{}),
		VerifyAuditEndpoint: c.endpoint(analytics.MethodVerifyAudit, total(func(r analytics.VerifyAuditRequest) *billingv1.VerifyAuditRequest {
			return &billingv1.VerifyAuditRequest{AgainstTopic: r.AgainstTopic}
		}), total(auditVerdictFromPB), &billingv1.AuditVerdict{}),
	}
}

func summaryQueryToPB(q analytics.SummaryQuery) *analyticsv1.GetSummaryRequest {
	return &analyticsv1.GetSummaryRequest{From: q.From, To: q.To}
}

func summaryQueryFromPB(r *analyticsv1.GetSummaryRequest) analytics.SummaryQuery {
	return analytics.SummaryQuery{From: r.GetFrom(), To: r.GetTo()}
}

func summaryToPB(s analytics.Summary) *analyticsv1.Summary {
	out := &analyticsv1.Summary{
		Patients: &analyticsv1.Patients{Registered: s.Patients.Registered, Updated: s.Patients.Updated, Deleted: s.Patients.Deleted, Live: s.Patients.Live,
			Duplicates: s.Patients.Duplicates, Merged: s.Patients.Merged},
		Days: mapSlice(s.Days, func(d analytics.Day) *analyticsv1.Day {
			return &analyticsv1.Day{Day: d.Day, Registered: d.Registered, Updated: d.Updated, Deleted: d.Deleted, InvoicesIssued: d.InvoicesIssued}
		}),
		Invoices: &analyticsv1.Invoices{Issued: s.Invoices.Issued, Paid: s.Invoices.Paid, Voided: s.Invoices.Voided},
		Amounts: mapSlice(s.Amounts, func(a analytics.Amount) *analyticsv1.Amount {
			return &analyticsv1.Amount{Currency: a.Currency, Invoiced: a.Invoiced, Paid: a.Paid}
		}),
		Access: &analyticsv1.Access{Reads: s.Access.Reads, Changes: s.Access.Changes, Denied: s.Access.Denied},
		Events: &analyticsv1.Events{Patient: s.Events.Patient, Billing: s.Events.Billing, Audit: s.Events.Audit},
		Lag:    s.Lag,
	}
	if s.LastEventAt != nil {
		out.LastEventAt = toTimestamp(*s.LastEventAt)
	}
	return out
}

func summaryFromPB(s *analyticsv1.Summary) analytics.Summary {
	out := analytics.Summary{
		Patients: analytics.Patients{Registered: s.GetPatients().GetRegistered(), Updated: s.GetPatients().GetUpdated(),
			Deleted: s.GetPatients().GetDeleted(), Live: s.GetPatients().GetLive(), Duplicates: s.GetPatients().GetDuplicates(),
			Merged: s.GetPatients().GetMerged()},
		Days: mapSlice(s.GetDays(), func(d *analyticsv1.Day) analytics.Day {
			return analytics.Day{Day: d.GetDay(), Registered: d.GetRegistered(), Updated: d.GetUpdated(), Deleted: d.GetDeleted(), InvoicesIssued: d.GetInvoicesIssued()}
		}),
		Invoices: analytics.Invoices{Issued: s.GetInvoices().GetIssued(), Paid: s.GetInvoices().GetPaid(), Voided: s.GetInvoices().GetVoided()},
		Amounts: mapSlice(s.GetAmounts(), func(a *analyticsv1.Amount) analytics.Amount {
			return analytics.Amount{Currency: a.GetCurrency(), Invoiced: a.GetInvoiced(), Paid: a.GetPaid()}
		}),
		Access: analytics.AccessFigs{Reads: s.GetAccess().GetReads(), Changes: s.GetAccess().GetChanges(), Denied: s.GetAccess().GetDenied()},
		Events: analytics.EventFigs{Patient: s.GetEvents().GetPatient(), Billing: s.GetEvents().GetBilling(), Audit: s.GetEvents().GetAudit()},
		Lag:    s.GetLag(),
	}
	if out.Days == nil {
		out.Days = []analytics.Day{}
	}
	if out.Amounts == nil {
		out.Amounts = []analytics.Amount{}
	}
	if s.GetLastEventAt() != nil {
		t := fromTimestamp(s.GetLastEventAt()).In(time.UTC)
		out.LastEventAt = &t
	}
	return out
}
