package billing_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// newService builds the real service over d with its real audit writer.
func newService(t *testing.T, d *db.DB) billing.Service {
	t.Helper()
	w := audit.NewWriter(d, audit.Options{Table: billing.AuditTable})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return billing.NewService(billing.NewStore(d), w, billing.Options{})
}

func ctxAs(subject string) context.Context {
	ctx := authz.WithPrincipal(context.Background(), authz.Principal{Subject: subject, Role: "billing"})
	return observe.WithRequestID(ctx, observe.NewRequestID())
}

func wantKind(t *testing.T, err error, k errs.Kind) {
	t.Helper()
	if errs.KindOf(err) != k {
		t.Fatalf("err = %v (%s), want %s", err, errs.KindOf(err), k)
	}
}

// account opens an account for a new patient and returns the patient id.
func account(t *testing.T, s billing.Service) string {
	t.Helper()
	pid := uuid.NewString()
	if _, err := s.CreateAccount(ctxAs("svc:patient"), billing.CreateAccountRequest{PatientID: pid, Name: "N", Email: "e@example.org"}); err != nil {
		t.Fatal(err)
	}
	return pid
}

func invoiceReq(pid, currency string, lines ...billing.LineInput) billing.CreateInvoiceRequest {
	if len(lines) == 0 {
		lines = []billing.LineInput{{Description: "Consultation", Quantity: 2, UnitAmount: 7550}, {Description: "X-ray", Quantity: 1, UnitAmount: 12000}}
	}
	return billing.CreateInvoiceRequest{PatientID: pid, Currency: currency, DueDate: "2026-12-31", Lines: lines}
}

func TestAccounts(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("u1")
		pid := uuid.NewString()
		// Concurrent creates for one patient (the gRPC call and the topic consumer racing)
		// make exactly one account, and every caller gets it.
		const n = 20
		got := make([]billing.Account, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				a, err := s.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: strings.ToUpper(pid)})
				if err != nil {
					t.Errorf("create %d: %v", i, err)
				}
				got[i] = a
			})
		}
		wg.Wait()
		a := got[0]
		if a.PatientID != pid || a.Status != billing.AccountActive || a.ID == "" || a.CreatedAt.IsZero() {
			t.Fatalf("account %+v", a)
		}
		for i := range n {
			if got[i] != a {
				t.Fatalf("create %d returned %+v, want %+v", i, got[i], a)
			}
		}
		if again, err := s.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: pid}); err != nil || again != a {
			t.Fatalf("second create = %+v, %v", again, err)
		}
		if g, err := s.GetAccount(ctx, a.ID); err != nil || g != a {
			t.Fatalf("get = %+v, %v", g, err)
		}
		if l, err := s.ListAccounts(ctx, billing.AccountQuery{PatientID: pid}); err != nil || len(l) != 1 || l[0] != a {
			t.Fatalf("list = %+v, %v", l, err)
		}
		if l, err := s.ListAccounts(ctx, billing.AccountQuery{PatientID: uuid.NewString()}); err != nil || l == nil || len(l) != 0 {
			t.Fatalf("list of a patient without account = %#v, %v", l, err)
		}
		_, err := s.GetAccount(ctx, uuid.NewString())
		if !errors.Is(err, billing.ErrAccountNotFound) {
			t.Fatalf("unknown account: %v", err)
		}
		_, err = s.GetAccount(ctx, "nope")
		wantKind(t, err, errs.InvalidArgument)
		_, err = s.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: "nope"})
		wantKind(t, err, errs.InvalidArgument)
		_, err = s.ListAccounts(ctx, billing.AccountQuery{})
		wantKind(t, err, errs.InvalidArgument)
		var count int
		if err := d.GetContext(context.Background(), &count, `SELECT count(*) FROM accounts`); err != nil || count != 1 {
			t.Fatalf("%d accounts, %v", count, err)
		}
	})
}

func TestInvoiceLifecycle(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("clerk")
		pid := account(t, s)
		accs, _ := s.ListAccounts(ctx, billing.AccountQuery{PatientID: pid})

		_, err := s.CreateInvoice(ctx, invoiceReq(uuid.NewString(), "USD"))
		if !errors.Is(err, billing.ErrNoAccount) {
			t.Fatalf("invoice for a patient without account: %v", err)
		}
		inv, err := s.CreateInvoice(ctx, invoiceReq(pid, "usd"))
		if err != nil {
			t.Fatal(err)
		}
		if inv.Status != billing.StatusDraft || inv.Currency != "USD" || inv.AccountID != accs[0].ID || inv.Subtotal != 27100 ||
			inv.AmountDue != 27100 || inv.AmountPaid != 0 || len(inv.Lines) != 2 || inv.Lines[0].Amount != 15100 || inv.Version != 1 ||
			inv.Payments == nil || len(inv.Payments) != 0 {
			t.Fatalf("created %+v", inv)
		}
		got, err := s.GetInvoice(ctx, strings.ToUpper(inv.ID))
		if err != nil || !equalInvoice(got, inv) {
			t.Fatalf("get = %+v, %v; want %+v", got, err, inv)
		}
		_, err = s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 100, Method: billing.MethodCash})
		wantKind(t, err, errs.Conflict) // a draft cannot be paid
		open, err := s.IssueInvoice(ctx, inv.ID)
		if err != nil || open.Status != billing.StatusOpen || open.Version != 2 || !open.UpdatedAt.After(inv.CreatedAt) && !open.UpdatedAt.Equal(inv.CreatedAt) {
			t.Fatalf("issue = %+v, %v", open, err)
		}
		_, err = s.IssueInvoice(ctx, inv.ID)
		wantKind(t, err, errs.Conflict)
		_, err = s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 27101, Method: billing.MethodCard})
		wantKind(t, err, errs.Conflict) // overpayment
		if e := errs.As(err); !strings.Contains(e.Message, "271.00 USD") {
			t.Errorf("overpayment message %q does not name the amount due", e.Message)
		}
		_, err = s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 100, Method: billing.MethodCard, Currency: "EUR"})
		wantKind(t, err, errs.InvalidArgument) // mixed currency
		part, err := s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 10000, Method: billing.MethodInsurance, Currency: "usd"})
		if err != nil || part.Status != billing.StatusOpen || part.AmountPaid != 10000 || part.AmountDue != 17100 || len(part.Payments) != 1 ||
			part.Payments[0].Method != billing.MethodInsurance || part.Payments[0].ID == "" || part.Version != 3 {
			t.Fatalf("partial payment = %+v, %v", part, err)
		}
		paid, err := s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 17100, Method: billing.MethodBankTransfer})
		if err != nil || paid.Status != billing.StatusPaid || paid.AmountDue != 0 || paid.AmountPaid != 27100 || len(paid.Payments) != 2 {
			t.Fatalf("final payment = %+v, %v", paid, err)
		}
		if got, _ := s.GetInvoice(ctx, inv.ID); !equalInvoice(got, paid) {
			t.Fatalf("stored %+v, want %+v", got, paid)
		}
		_, err = s.VoidInvoice(ctx, inv.ID)
		wantKind(t, err, errs.Conflict)
		_, err = s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 1, Method: billing.MethodCash})
		wantKind(t, err, errs.Conflict)

		// Void from draft and from open (keeping a partial payment; nothing is due after).
		d2, _ := s.CreateInvoice(ctx, invoiceReq(pid, "EUR"))
		if v, err := s.VoidInvoice(ctx, d2.ID); err != nil || v.Status != billing.StatusVoid || v.AmountDue != 0 {
			t.Fatalf("void draft = %+v, %v", v, err)
		}
		_, err = s.IssueInvoice(ctx, d2.ID)
		wantKind(t, err, errs.Conflict)
		o3, _ := s.CreateInvoice(ctx, invoiceReq(pid, "EUR"))
		_, _ = s.IssueInvoice(ctx, o3.ID)
		_, _ = s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: o3.ID, Amount: 1, Method: billing.MethodCash})
		if v, err := s.VoidInvoice(ctx, o3.ID); err != nil || v.Status != billing.StatusVoid || v.AmountDue != 0 || v.AmountPaid != 1 {
			t.Fatalf("void open = %+v, %v", v, err)
		}
		// An invoice of zero is settled when issued.
		z, _ := s.CreateInvoice(ctx, invoiceReq(pid, "USD", billing.LineInput{Description: "Goodwill", Quantity: 1, UnitAmount: 0}))
		if v, err := s.IssueInvoice(ctx, z.ID); err != nil || v.Status != billing.StatusPaid || v.AmountDue != 0 {
			t.Fatalf("issue zero invoice = %+v, %v", v, err)
		}

		for _, id := range []string{uuid.NewString()} {
			_, err = s.GetInvoice(ctx, id)
			if !errors.Is(err, billing.ErrInvoiceNotFound) {
				t.Fatalf("unknown invoice: %v", err)
			}
			_, err = s.IssueInvoice(ctx, id)
			wantKind(t, err, errs.NotFound)
			_, err = s.VoidInvoice(ctx, id)
			wantKind(t, err, errs.NotFound)
			_, err = s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: id, Amount: 1, Method: billing.MethodCash})
			wantKind(t, err, errs.NotFound)
		}
		_, err = s.IssueInvoice(ctx, "bad")
		wantKind(t, err, errs.InvalidArgument)

		// Listing: by patient, by status, paged.
		page, err := s.ListInvoices(ctx, billing.InvoiceQuery{PatientID: pid})
		if err != nil || len(page.Invoices) != 4 || page.NextPageToken != "" {
			t.Fatalf("list = %d invoices, %q, %v", len(page.Invoices), page.NextPageToken, err)
		}
		if page.Invoices[0].ID != inv.ID || len(page.Invoices[0].Lines) != 2 || len(page.Invoices[0].Payments) != 2 {
			t.Fatalf("first listed %+v", page.Invoices[0])
		}
		page, err = s.ListInvoices(ctx, billing.InvoiceQuery{Status: "void"})
		if err != nil || len(page.Invoices) != 2 {
			t.Fatalf("void invoices = %d, %v", len(page.Invoices), err)
		}
		var ids []string
		tok := ""
		for {
			page, err = s.ListInvoices(ctx, billing.InvoiceQuery{PatientID: pid, Limit: 3, PageToken: tok})
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range page.Invoices {
				ids = append(ids, i.ID)
			}
			if tok = page.NextPageToken; tok == "" {
				break
			}
		}
		if len(ids) != 4 {
			t.Fatalf("paged walk saw %d invoices", len(ids))
		}
		if p, err := s.ListInvoices(ctx, billing.InvoiceQuery{PatientID: uuid.NewString()}); err != nil || p.Invoices == nil || len(p.Invoices) != 0 {
			t.Fatalf("empty list = %#v, %v", p, err)
		}
		for _, bad := range []billing.InvoiceQuery{{Status: "pending"}, {PatientID: "x"}, {Limit: -1}, {Limit: 501}, {PageToken: "zz"}} {
			_, err := s.ListInvoices(ctx, bad)
			wantKind(t, err, errs.InvalidArgument)
		}

		// The audit log says who did what to which invoice, allowed or not, in one chain.
		entries, err := audit.List(context.Background(), d, billing.AuditTable, audit.Query{SubjectID: inv.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range entries {
			if e.Actor != "clerk" || e.Role != "billing" || e.RequestID == "" {
				t.Fatalf("audit entry %+v", e)
			}
			seen[e.Action+"/"+e.Outcome] = true
		}
		for _, want := range []string{"create_invoice/success", "read_invoice/success", "issue_invoice/success", "issue_invoice/rejected",
			"record_payment/success", "record_payment/rejected", "void_invoice/rejected"} {
			if !seen[want] {
				t.Errorf("audit lacks %s: %v", want, seen)
			}
		}
		if r, err := audit.Verify(context.Background(), d, billing.AuditTable); err != nil || !r.OK {
			t.Fatalf("audit chain: %+v %v", r, err)
		}
	})
}

// equalInvoice compares invoices, instants by Equal.
func equalInvoice(a, b billing.Invoice) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) || !a.UpdatedAt.Equal(b.UpdatedAt) || len(a.Payments) != len(b.Payments) {
		return false
	}
	for i := range a.Payments {
		if !a.Payments[i].At.Equal(b.Payments[i].At) {
			return false
		}
		a.Payments[i].At, b.Payments[i].At = b.Payments[i].At, a.Payments[i].At
	}
	a.CreatedAt, a.UpdatedAt = b.CreatedAt, b.UpdatedAt
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}

// TestStateMachineThroughTheStore drives an invoice into every state and tries every action
// on it: the allowed ones change it, the others are 409 and change nothing.
func TestStateMachineThroughTheStore(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("clerk")
		pid := account(t, s)
		into := func(st billing.Status) billing.Invoice {
			inv, err := s.CreateInvoice(ctx, invoiceReq(pid, "GBP"))
			if err != nil {
				t.Fatal(err)
			}
			switch st {
			case billing.StatusOpen:
				inv, err = s.IssueInvoice(ctx, inv.ID)
			case billing.StatusPaid:
				if _, err = s.IssueInvoice(ctx, inv.ID); err == nil {
					inv, err = s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: inv.Subtotal, Method: billing.MethodCard})
				}
			case billing.StatusVoid:
				inv, err = s.VoidInvoice(ctx, inv.ID)
			}
			if err != nil || inv.Status != st {
				t.Fatalf("into %s: %+v %v", st, inv, err)
			}
			return inv
		}
		act := map[billing.Action]func(id string) (billing.Invoice, error){
			billing.ActIssue: func(id string) (billing.Invoice, error) { return s.IssueInvoice(ctx, id) },
			billing.ActVoid:  func(id string) (billing.Invoice, error) { return s.VoidInvoice(ctx, id) },
			billing.ActPay: func(id string) (billing.Invoice, error) {
				cur, _ := s.GetInvoice(ctx, id)
				return s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: id, Amount: max(cur.AmountDue, 1), Method: billing.MethodCash})
			},
		}
		for _, from := range billing.Statuses {
			for _, a := range billing.Actions {
				t.Run(fmt.Sprintf("%s/%s", a, from), func(t *testing.T) {
					inv := into(from)
					want, allowed := billing.Next(from, a)
					got, err := act[a](inv.ID)
					after, _ := s.GetInvoice(ctx, inv.ID)
					if allowed != nil {
						wantKind(t, err, errs.Conflict)
						if after.Status != from || after.Version != inv.Version {
							t.Fatalf("refused %s changed the invoice: %+v", a, after)
						}
						return
					}
					if err != nil || got.Status != want || after.Status != want || after.Version != inv.Version+1 {
						t.Fatalf("%s from %s: %+v %v; stored %s", a, from, got.Status, err, after.Status)
					}
				})
			}
		}
	})
}

// TestMinorUnits: amounts are minor units whatever the exponent, with no rounding anywhere.
func TestMinorUnits(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("clerk")
		pid := account(t, s)
		for _, tc := range []struct {
			currency string
			unit     int64
			qty      int64
			want     int64
		}{
			{"JPY", 1500, 3, 4500},    // yen have no minor unit
			{"KRW", 99999, 7, 699993}, // nor won
			{"BHD", 12345, 3, 37035},  // 12.345 BHD × 3 = 37.035 BHD, in fils
			{"KWD", 1, 10000, 10000},  // 0.001 KWD × 10000
			{"CLF", 12345, 2, 24690},  // four decimals
			{"USD", 1_000_000_000_000, 10000, 10_000_000_000_000_000},
		} {
			inv, err := s.CreateInvoice(ctx, invoiceReq(pid, tc.currency, billing.LineInput{Description: "x", Quantity: tc.qty, UnitAmount: tc.unit}))
			if err != nil || inv.Subtotal != tc.want || inv.Currency != tc.currency {
				t.Fatalf("%s: %+v %v", tc.currency, inv, err)
			}
			if _, err := s.IssueInvoice(ctx, inv.ID); err != nil {
				t.Fatal(err)
			}
			paid, err := s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: tc.want, Method: billing.MethodCard, Currency: tc.currency})
			if err != nil || paid.Status != billing.StatusPaid || paid.AmountPaid != tc.want {
				t.Fatalf("%s pay: %+v %v", tc.currency, paid, err)
			}
		}
		_, err := s.CreateInvoice(ctx, invoiceReq(pid, "XYZ"))
		wantKind(t, err, errs.InvalidArgument)
		_, err = s.CreateInvoice(ctx, invoiceReq(pid, "JPY", billing.LineInput{Description: "x", Quantity: 1, UnitAmount: 1, Currency: "USD"}))
		wantKind(t, err, errs.InvalidArgument)
	})
}

// TestIdempotency: the same key and body replay the first response; the same key with another
// body (or for another operation) is a 409; 20 concurrent requests with one key make one
// invoice; keys are per caller.
func TestIdempotency(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("clerk")
		pid := account(t, s)
		req := invoiceReq(pid, "USD")
		req.IdempotencyKey = "inv-1"
		const n = 20
		got := make([]billing.Invoice, n)
		errsSeen := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i], errsSeen[i] = s.CreateInvoice(ctx, req) })
		}
		wg.Wait()
		for i := range n {
			if errsSeen[i] != nil || !equalInvoice(got[i], got[0]) {
				t.Fatalf("request %d: %+v %v; want %+v", i, got[i], errsSeen[i], got[0])
			}
		}
		var count int
		if err := d.GetContext(context.Background(), &count, `SELECT count(*) FROM invoices`); err != nil || count != 1 {
			t.Fatalf("20 creates with one key made %d invoices (%v)", count, err)
		}
		first := got[0]
		// The replay is the first response, even after the invoice moved on.
		if _, err := s.IssueInvoice(ctx, first.ID); err != nil {
			t.Fatal(err)
		}
		spelled := req
		spelled.Currency = "usd"
		spelled.Lines = []billing.LineInput{{Description: " Consultation ", Quantity: 2, UnitAmount: 7550}, {Description: "X-ray", Quantity: 1, UnitAmount: 12000}}
		if again, err := s.CreateInvoice(ctx, spelled); err != nil || !equalInvoice(again, first) || again.Status != billing.StatusDraft {
			t.Fatalf("replay = %+v, %v", again, err)
		}
		other := req
		other.DueDate = "2027-01-01"
		if _, err := s.CreateInvoice(ctx, other); !errors.Is(err, billing.ErrIdempotencyConflict) {
			t.Fatalf("same key, other body: %v", err)
		}
		if _, err := s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: first.ID, Amount: 1, Method: billing.MethodCash, IdempotencyKey: "inv-1"}); !errors.Is(err, billing.ErrIdempotencyConflict) {
			t.Fatalf("same key, other operation: %v", err)
		}
		// Keys are per caller.
		if inv, err := s.CreateInvoice(ctxAs("another-clerk"), req); err != nil || inv.ID == first.ID {
			t.Fatalf("other caller's key: %+v %v", inv, err)
		}
		// A failed request stores nothing: fixing it and retrying with the key works.
		bad := invoiceReq(uuid.NewString(), "USD")
		bad.IdempotencyKey = "inv-2"
		if _, err := s.CreateInvoice(ctx, bad); !errors.Is(err, billing.ErrNoAccount) {
			t.Fatalf("no account: %v", err)
		}
		if _, err := s.CreateInvoice(ctx, bad); !errors.Is(err, billing.ErrNoAccount) {
			t.Fatalf("no account again: %v", err)
		}

		// Payments: 20 concurrent identical keyed payments take the money once.
		pay := billing.PaymentRequest{InvoiceID: first.ID, Amount: 1000, Method: billing.MethodCard, IdempotencyKey: "pay-1"}
		pays := make([]billing.Invoice, n)
		for i := range n {
			wg.Go(func() { pays[i], errsSeen[i] = s.RecordPayment(ctx, pay) })
		}
		wg.Wait()
		for i := range n {
			if errsSeen[i] != nil || pays[i].AmountPaid != 1000 || len(pays[i].Payments) != 1 {
				t.Fatalf("payment %d: %+v %v", i, pays[i], errsSeen[i])
			}
		}
		if cur, _ := s.GetInvoice(ctx, first.ID); cur.AmountPaid != 1000 || len(cur.Payments) != 1 {
			t.Fatalf("one keyed payment sent 20 times paid %d in %d payments", cur.AmountPaid, len(cur.Payments))
		}
		pay.Amount = 2000
		if _, err := s.RecordPayment(ctx, pay); !errors.Is(err, billing.ErrIdempotencyConflict) {
			t.Fatalf("same payment key, other amount: %v", err)
		}
	})
}

// TestConcurrentPaymentsNeverOverpay: unkeyed payments racing for the last of what is due
// take it once; the rest are conflicts.
func TestConcurrentPaymentsNeverOverpay(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("clerk")
		pid := account(t, s)
		inv, _ := s.CreateInvoice(ctx, invoiceReq(pid, "JPY", billing.LineInput{Description: "x", Quantity: 1, UnitAmount: 10}))
		if _, err := s.IssueInvoice(ctx, inv.ID); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for range 20 {
			wg.Go(func() {
				_, err := s.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 3, Method: billing.MethodCash})
				mu.Lock()
				defer mu.Unlock()
				switch errs.KindOf(err) {
				case "":
					ok++
				case errs.Conflict:
				default:
					t.Errorf("payment: %v", err)
				}
			})
		}
		wg.Wait()
		cur, _ := s.GetInvoice(ctx, inv.ID)
		if ok != 3 || cur.AmountPaid != 9 || cur.Status != billing.StatusOpen {
			t.Fatalf("%d payments of 3 accepted, paid %d, status %s; want 3, 9, open", ok, cur.AmountPaid, cur.Status)
		}
	})
}

// TestLinesFrozenOnceIssued: the database itself refuses to change the lines of an invoice
// that is not a draft, whatever SQL tries.
func TestLinesFrozenOnceIssued(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("clerk")
		pid := account(t, s)
		inv, _ := s.CreateInvoice(ctx, invoiceReq(pid, "USD"))
		bg := context.Background()
		exec := func(q string, args ...any) error {
			_, err := d.ExecContext(bg, d.Rebind(q), args...)
			return err
		}
		if err := exec(`UPDATE invoice_lines SET description = ? WHERE invoice_id = ? AND line_no = 0`, "Edited", inv.ID); err != nil {
			t.Fatalf("a draft's line cannot change: %v", err)
		}
		if _, err := s.IssueInvoice(ctx, inv.ID); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`UPDATE invoice_lines SET unit_amount = 1, amount = quantity WHERE invoice_id = ?`,
			`DELETE FROM invoice_lines WHERE invoice_id = ?`,
			`INSERT INTO invoice_lines (invoice_id, line_no, description, quantity, unit_amount, amount) VALUES (?, 9, 'x', 1, 1, 1)`,
		} {
			if err := exec(q, inv.ID); err == nil {
				t.Errorf("%s: accepted on an open invoice", q)
			}
		}
		got, _ := s.GetInvoice(ctx, inv.ID)
		if len(got.Lines) != 2 || got.Lines[0].Description != "Edited" || got.Lines[1].UnitAmount != 12000 {
			t.Fatalf("lines changed: %+v", got.Lines)
		}
		if err := exec(`UPDATE invoices SET amount_paid = subtotal + 1 WHERE id = ?`, inv.ID); err == nil {
			t.Error("amount_paid above the subtotal accepted")
		}
	})
}

// TestAuditRead: billing's audit log reads back what the service audited, newest first,
// filtered by subject (an invoice, an account or a patient) and actor, with the contract's
// rules for every audit log.
func TestAuditRead(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		pid := account(t, s)
		inv, err := s.CreateInvoice(ctxAs("u-billing"), invoiceReq(pid, "USD"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetInvoice(ctxAs("u-other"), inv.ID); err != nil {
			t.Fatal(err)
		}
		all, err := s.Audit(ctxAs("u-admin"), audit.Query{})
		if err != nil || len(all) != 3 {
			t.Fatalf("whole log = %+v, %v; want 3 entries", all, err)
		}
		if all[0].Action != billing.ActionReadInvoice || all[0].SubjectID != inv.ID || all[0].Actor != "u-other" ||
			all[2].Action != billing.ActionCreateAccount || all[0].Outcome != audit.OutcomeSuccess || all[0].RequestID == "" {
			t.Fatalf("log not newest first or incomplete: %+v", all)
		}
		byInvoice, err := s.Audit(ctxAs("u-admin"), audit.Query{SubjectID: strings.ToUpper(inv.ID)})
		if err != nil || len(byInvoice) != 2 || byInvoice[0].Actor != "u-other" || byInvoice[1].Action != billing.ActionCreateInvoice {
			t.Fatalf("by invoice (upper-case id) = %+v, %v; want its read and its creation", byInvoice, err)
		}
		byActor, err := s.Audit(ctxAs("u-admin"), audit.Query{Actor: "u-billing", Limit: 1})
		if err != nil || len(byActor) != 1 || byActor[0].Action != billing.ActionCreateInvoice {
			t.Fatalf("by actor = %+v, %v; want the invoice's creation", byActor, err)
		}
		now := time.Now()
		for q, field := range map[*audit.Query]string{
			{Limit: 1001}: "limit", {Limit: -1}: "limit", {SubjectID: "nope"}: "subjectId",
			{Actor: strings.Repeat("a", 201)}: "actor", {From: now, To: now.Add(-time.Second)}: "to",
		} {
			_, err := s.Audit(ctxAs("u-admin"), *q)
			if e := errs.As(err); e.Kind != errs.InvalidArgument || e.Fields[field] == "" {
				t.Errorf("query %+v: %v; want invalid_argument on %s", *q, err, field)
			}
		}
	})
}
