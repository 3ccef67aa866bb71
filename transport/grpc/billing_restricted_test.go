package grpctransport

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	billingv1 "github.com/pms/pms/proto/pms/billing/v1"
)

// TestBillingGRPCRefusesRestricted: billing's gRPC reads refuse a restricted patient as REST
// does (PermissionDenied, kind restricted) — GetInvoice, GetAccount, ListAccounts and
// ListInvoices by patient — while the patient service's view of billing (patientBilling,
// which says x-pms-checked-by: patient) is served from a trusted (loopback) address, and is
// refused when the server trusts no proxy address.
func TestBillingGRPCRefusesRestricted(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		w := audit.NewWriter(d, audit.Options{Table: billing.AuditTable})
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		store := billing.NewStore(d)
		svc := billing.NewService(store, w, billing.Options{})
		ctx := authz.WithPrincipal(testContext(t), authz.Principal{Subject: "u-1", Role: authz.RoleBilling})
		pid := "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
		acct, err := svc.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: pid})
		if err != nil {
			t.Fatal(err)
		}
		inv, err := svc.CreateInvoice(ctx, billing.CreateInvoiceRequest{PatientID: pid, Currency: "USD", DueDate: "2026-12-31",
			Lines: []billing.LineInput{{Description: "Consultation", Quantity: 1, UnitAmount: 100}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.RecordConfidentiality(ctx, billing.ConfidentialityChange{PatientID: pid, Restricted: true, Version: 2, At: time.Now()}); err != nil {
			t.Fatal(err)
		}

		h := startBilling(t, svc, "127.0.0.1:0")
		conn := dial(t, h.addr)
		raw := billingv1.NewBillingServiceClient(conn)
		_, err = raw.GetInvoice(ctx, &billingv1.GetInvoiceRequest{Id: inv.ID})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("GetInvoice over the wire = %v; want PermissionDenied", err)
		}
		client := NewBillingClient(conn)
		_, err = client.GetInvoice(ctx, inv.ID)
		wantRestricted(t, "GetInvoice", err)
		_, err = client.GetAccount(ctx, acct.ID)
		wantRestricted(t, "GetAccount", err)
		_, err = client.ListAccounts(ctx, billing.AccountQuery{PatientID: pid})
		wantRestricted(t, "ListAccounts", err)
		_, err = client.ListInvoices(ctx, billing.InvoiceQuery{PatientID: pid})
		wantRestricted(t, "ListInvoices", err)
		// Only the patient service may vouch: another name, even from a trusted address, is
		// not believed.
		mdCtx := metadata.AppendToOutgoingContext(ctx, CheckedByKey, "gateway")
		_, err = client.GetInvoice(mdCtx, inv.ID)
		wantRestricted(t, "GetInvoice claimed by another service", err)

		view := patientBilling{set: client}
		if got, err := view.InvoicesFor(ctx, pid); err != nil || len(got) != 1 || got[0].ID != inv.ID {
			t.Fatalf("patient service's InvoicesFor = %+v, %v", got, err)
		}
		if got, err := view.AccountFor(ctx, pid); err != nil || got.ID != acct.ID {
			t.Fatalf("patient service's AccountFor = %+v, %v", got, err)
		}

		// A server that trusts no proxy address believes no claim without a certificate.
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		strict := NewServer(ServerOptions{TrustedProxies: []netip.Prefix{}})
		RegisterBillingServer(strict, billing.NewEndpoints(svc, billing.EndpointOptions{Guard: authz.AllowAnonymous()}))
		go func() { _ = strict.Serve(lis) }()
		t.Cleanup(strict.Stop)
		strictView := patientBilling{set: NewBillingClient(dial(t, lis.Addr().String()))}
		_, err = strictView.InvoicesFor(ctx, pid)
		wantRestricted(t, "InvoicesFor from an untrusted address", err)
	})
}

func wantRestricted(t *testing.T, what string, err error) {
	t.Helper()
	if errs.KindOf(err) != errs.Restricted {
		t.Errorf("%s = %v (%s); want restricted", what, err, errs.KindOf(err))
	}
}

// TestCheckedByBelief: x-pms-checked-by is believed over TLS only from the named service's
// certificate (or pms all's "all"), and without TLS only from a trusted address; only the
// patient service may say it.
func TestCheckedByBelief(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	in, out := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}
	tlsInfo := credentials.TLSInfo{}
	for _, c := range []struct {
		name  string
		claim string
		addr  net.Addr
		tls   bool
		cert  string
		want  string
	}{
		{"plain, trusted address", "patient", in, false, "", "patient"},
		{"plain, untrusted address", "patient", out, false, "", ""},
		{"plain, no claim", "", in, false, "", ""},
		{"plain, another service's claim", "gateway", in, false, "", ""},
		{"tls, patient's certificate", "patient", out, true, "patient", "patient"},
		{"tls, pms all's certificate", "patient", out, true, "all", "patient"},
		{"tls, the gateway's certificate", "patient", in, true, "gateway", ""},
		{"tls, no certificate, trusted address", "patient", in, true, "", ""},
	} {
		ctx := context.Background()
		p := &peer.Peer{Addr: c.addr}
		if c.tls {
			p.AuthInfo = tlsInfo
		}
		ctx = peer.NewContext(ctx, p)
		if c.cert != "" {
			ctx = authz.WithPeerService(ctx, c.cert)
		}
		md := metadata.MD{}
		if c.claim != "" {
			md.Set(CheckedByKey, c.claim)
		}
		if got := checkedBy(ctx, md, trusted); got != c.want {
			t.Errorf("%s: checkedBy = %q, want %q", c.name, got, c.want)
		}
	}
}
