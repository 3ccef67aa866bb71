package main

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/observe"
	grpctransport "github.com/pms/pms/transport/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// BenchmarkBillingGRPC measures CreateInvoice and GetInvoice against `pms billing` on
// PostgreSQL through its real gRPC listener and the client endpoints, 64 callers at once;
// every call writes its audit row.
func BenchmarkBillingGRPC(b *testing.B) {
	url := dbtest.PostgresDatabase(b)
	a, stop := startPMS(b, billingAddrs, billingArgs(b, url, "--rate-limit=0")...)
	defer stop()
	conn, err := grpc.NewClient(a["billing/grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := grpctransport.NewBillingClient(conn)
	// Billing staff: every call carries a valid token (the guard checks it on every call).
	ctx := authz.WithToken(context.Background(), issuer(b).Token(b, "bench", authz.RoleBilling))
	pid := uuid.NewString()
	if _, err := c.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: pid}); err != nil {
		b.Fatal(err)
	}
	req := billing.CreateInvoiceRequest{PatientID: pid, Currency: "USD", DueDate: "2026-12-31",
		Lines: []billing.LineInput{{Description: "Consultation", Quantity: 1, UnitAmount: 7550}, {Description: "X-ray", Quantity: 2, UnitAmount: 12000}}}
	seed, err := c.CreateInvoice(ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.Run("CreateInvoice", func(b *testing.B) {
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r := req
				if n.Add(1)%2 == 0 {
					r.IdempotencyKey = uuid.NewString() // half of them keyed
				}
				if _, err := c.CreateInvoice(ctx, r); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("GetInvoice", func(b *testing.B) {
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			ctx := observe.WithRequestID(ctx, "bench")
			for pb.Next() {
				if _, err := c.GetInvoice(ctx, seed.ID); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
