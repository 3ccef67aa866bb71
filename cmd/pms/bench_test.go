package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/observe"
	grpctransport "github.com/pms/pms/transport/grpc"
	httptransport "github.com/pms/pms/transport/http"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// BenchmarkPatient measures create and get against PostgreSQL three ways at the same
// concurrency (64 callers): the Service called directly (audit write included), and through
// `pms patient`'s real HTTP and gRPC listeners via the client endpoints. The ratio
// http/direct is the cost of the transport layer (target ≤ 1.2× for get).
func BenchmarkPatient(b *testing.B) {
	url := dbtest.PostgresDatabase(b)
	a, stop := startPMS(b, patientAddrs, append(patientArgs(b, url), "--rate-limit=0")...)
	defer stop()

	s, err := cm(b, url)
	if err != nil {
		b.Fatal(err)
	}
	d, err := openServiceDB(context.Background(), s, "patient", "", migrations.Patient(), patient.DatabaseOptions()...) // as the service opens it
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable})
	defer w.Close(context.Background())
	direct := patient.NewService(patient.NewStore(d), w, patient.Options{})

	httpC, err := httptransport.NewPatientClient("http://"+a["patient/http"], httptransport.ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := grpc.NewClient(a["patient/grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	grpcC := grpctransport.NewPatientClient(conn)

	var n atomic.Int64
	tok := issuer(b).Token(b, "bench", authz.RoleClinician)
	seed, err := direct.Create(context.Background(), patient.CreateRequest{Name: "Bench", Email: "bench@example.org", Address: "x", DateOfBirth: "1990-01-01"})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		svc  patient.Service
	}{{"direct", direct}, {"http", httpC}, {"grpc", grpcC}} {
		b.Run("get/"+c.name, func(b *testing.B) {
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				ctx := authz.WithToken(observe.WithRequestID(context.Background(), "bench"), tok)
				for pb.Next() {
					if _, err := c.svc.Get(ctx, seed.ID); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run("create/"+c.name, func(b *testing.B) {
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				ctx := authz.WithToken(context.Background(), tok)
				for pb.Next() {
					i := n.Add(1)
					_, err := c.svc.Create(ctx, patient.CreateRequest{Name: "Bench", Email: fmt.Sprintf("b%d@example.org", i), Address: "x", DateOfBirth: "1990-01-01"})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// cm returns settings for a process-less build against url.
func cm(tb testing.TB, url string) (settings, error) {
	c := common{dataDir: tb.TempDir(), databaseURL: url, logFormat: "logfmt", logLevel: "error",
		databaseConns: db.DefaultMaxConns, shutdownTimeout: 5 * time.Second, kafka: kafkaFlags{partitions: 3, replication: 1},
		jwksURL: testIssuer.JWKSURL()}
	return c.parse(nopWriter{})
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
