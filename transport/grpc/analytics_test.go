package grpctransport

import (
	"context"
	"net"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
)

// summaryFunc is an analytics.Service in a function.
type summaryFunc func(ctx context.Context, q analytics.SummaryQuery) (analytics.Summary, error)

func (f summaryFunc) GetSummary(ctx context.Context, q analytics.SummaryQuery) (analytics.Summary, error) {
	return f(ctx, q)
}

// VerifyAudit answers a good verdict: these tests are about the summary.
func (f summaryFunc) VerifyAudit(context.Context) (audit.Report, error) {
	return audit.Report{Service: "analytics", OK: true}, nil
}

// TestAnalyticsRoundTrip: a summary survives the wire exactly (empty lists stay empty, an
// absent lastEventAt stays absent), and a field error comes back with its kind and fields.
func TestAnalyticsRoundTrip(t *testing.T) {
	last := time.Date(2026, 11, 25, 10, 0, 0, 123000, time.UTC)
	full := analytics.Summary{
		Patients:    analytics.Patients{Registered: 3, Updated: 1, Deleted: 1, Live: 2, Duplicates: 1},
		Days:        []analytics.Day{{Day: "2026-11-25", Registered: 3, Updated: 1, Deleted: 1, InvoicesIssued: 2}},
		Invoices:    analytics.Invoices{Issued: 2, Paid: 1, Voided: 1},
		Amounts:     []analytics.Amount{{Currency: "USD", Invoiced: 100, Paid: 50}},
		Access:      analytics.AccessFigs{Reads: 5, Changes: 4, Denied: 1},
		Events:      analytics.EventFigs{Patient: 5, Billing: 4, Audit: 10},
		LastEventAt: &last, Lag: 7,
	}
	empty := analytics.Summary{Days: []analytics.Day{}, Amounts: []analytics.Amount{}}
	var answer analytics.Summary
	var seen analytics.SummaryQuery
	svc := summaryFunc(func(_ context.Context, q analytics.SummaryQuery) (analytics.Summary, error) {
		seen = q
		if err := analytics.ValidateQuery(q); err != nil {
			return analytics.Summary{}, err
		}
		return answer, nil
	})
	set := analytics.NewEndpoints(svc, analytics.EndpointOptions{Guard: authz.AllowAnonymous()})
	s := NewServer(ServerOptions{})
	RegisterAnalyticsServer(s, set)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), append(ClientDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := NewAnalyticsClient(conn)

	for _, want := range []analytics.Summary{full, empty} {
		answer = want
		got, err := c.GetSummary(context.Background(), analytics.SummaryQuery{From: "2026-11-01", To: "2026-11-30"})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, %v\nwant %+v", got, err, want)
		}
		if seen != (analytics.SummaryQuery{From: "2026-11-01", To: "2026-11-30"}) {
			t.Fatalf("server saw %+v", seen)
		}
	}
	_, err = c.GetSummary(context.Background(), analytics.SummaryQuery{From: "2026-11-30", To: "2026-11-01"})
	if e := errs.As(err); e == nil || e.Kind != errs.InvalidArgument || e.Fields["to"] == "" {
		t.Fatalf("bad range: %#v", err)
	}
}
