package patient_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeBilling is a patient.Billing whose answers a test sets.
type fakeBilling struct {
	mu       sync.Mutex
	err      error
	created  []string
	accounts map[string]patient.BillingAccount
	invoices map[string][]patient.Invoice
}

func (f *fakeBilling) CreateAccount(_ context.Context, pid, name, email string) (patient.BillingAccount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, pid+"|"+name+"|"+email)
	if f.err != nil {
		return patient.BillingAccount{}, f.err
	}
	a := patient.BillingAccount{ID: "acc-" + pid, PatientID: pid, Status: "active"}
	f.accounts[pid] = a
	return a, nil
}

func (f *fakeBilling) AccountFor(_ context.Context, pid string) (patient.BillingAccount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return patient.BillingAccount{}, f.err
	}
	a, ok := f.accounts[pid]
	if !ok {
		return a, errs.New(errs.NotFound, "the patient has no billing account")
	}
	return a, nil
}

func (f *fakeBilling) InvoicesFor(_ context.Context, pid string) ([]patient.Invoice, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.invoices[pid], nil
}

func (f *fakeBilling) createdCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.created...)
}

func (f *fakeBilling) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func TestBillingThroughThePatientService(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable})
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		fb := &fakeBilling{accounts: map[string]patient.BillingAccount{}, invoices: map[string][]patient.Invoice{}}
		reg := prometheus.NewRegistry()
		m := patient.NewMetrics(reg)
		var logs bytes.Buffer
		s := m.Instrumenting()(patient.NewService(patient.NewStore(d), w, patient.Options{
			Billing: m.Billing(fb), Logger: log.NewLogfmtLogger(log.NewSyncWriter(&logs)),
		}))
		ctx := ctxAs("clerk")

		// Registering a patient opens the account, with the patient's id, name and email,
		// after the answer; a read of the account waits for that open (billing_open.go).
		p, err := s.Create(ctx, req(1))
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.BillingAccount(ctx, p.ID)
		if err != nil || a.PatientID != p.ID {
			t.Fatalf("billing account = %+v, %v", a, err)
		}
		if created := fb.createdCalls(); len(created) != 1 || created[0] != p.ID+"|Patient 1|p1@example.org" {
			t.Fatalf("billing got %v", created)
		}
		fb.invoices[p.ID] = []patient.Invoice{{ID: "i1", PatientID: p.ID, Currency: "USD", Subtotal: 5}}
		if inv, err := s.Invoices(ctx, p.ID); err != nil || len(inv) != 1 || inv[0].ID != "i1" {
			t.Fatalf("invoices = %+v, %v", inv, err)
		}

		// Billing down: the patient is still registered; the failure is logged by id and
		// counted; the billing reads are 503 (not 500).
		fb.setErr(errs.New(errs.Unavailable, "the billing service is unavailable"))
		p2, err := s.Create(ctx, req(2))
		if err != nil {
			t.Fatalf("create while billing is down: %v", err)
		}
		_, err = s.BillingAccount(ctx, p2.ID) // waits for the failed open
		wantKind(t, err, errs.Unavailable)
		if got := (mustCounter(t, reg, "CreateAccount", "unavailable")); got != 1 {
			t.Fatalf("billing failures counted %v, want 1", got)
		}
		if l := logs.String(); !strings.Contains(l, p2.ID) || strings.Contains(l, "Patient 2") || strings.Contains(l, "p2@example.org") {
			t.Fatalf("log line: %s", l)
		}
		_, err = s.Invoices(ctx, p2.ID)
		wantKind(t, err, errs.Unavailable)
		fb.setErr(errs.New(errs.Timeout, "the call timed out"))
		_, err = s.BillingAccount(ctx, p2.ID)
		wantKind(t, err, errs.Timeout)
		fb.setErr(errors.New("a raw adapter error with details"))
		_, err = s.Invoices(ctx, p2.ID)
		wantKind(t, err, errs.Internal)

		// Billing back: the account the registration missed is not found yet (the topic
		// will open it); an idempotent replay of the registration opens it.
		fb.setErr(nil)
		_, err = s.BillingAccount(ctx, p2.ID)
		wantKind(t, err, errs.NotFound)
		if inv, err := s.Invoices(ctx, p2.ID); err != nil || inv == nil || len(inv) != 0 {
			t.Fatalf("no invoices = %#v, %v", inv, err)
		}

		// The patient's own state decides first: malformed 400, unknown 404, deleted 410.
		_, err = s.BillingAccount(ctx, "nope")
		wantKind(t, err, errs.InvalidArgument)
		_, err = s.Invoices(ctx, "6ba7b810-9dad-11d1-80b4-00c04fd430c8")
		wantKind(t, err, errs.NotFound)
		if err := s.Delete(ctx, patient.DeleteRequest{ID: p.ID}); err != nil {
			t.Fatal(err)
		}
		_, err = s.BillingAccount(ctx, p.ID)
		wantKind(t, err, errs.Gone)

		// Both reads are audited like Get.
		entries, err := s.Audit(ctx, patient.AuditQuery{PatientID: p2.ID})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range entries {
			seen[e.Action+"/"+e.Outcome] = true
		}
		for _, want := range []string{"read_billing_account/error", "read_billing_account/not_found", "read_invoices/success", "read_invoices/error"} {
			if !seen[want] {
				t.Errorf("audit lacks %s: %v", want, seen)
			}
		}
		if got := (mustRead(t, reg, "billing_account", "unavailable")); got != 1 {
			t.Errorf("reads counted %v", got)
		}
	})
}

func TestNoBillingConfigured(t *testing.T) {
	d := dbtest.Open(t, db.SQLite, migrations.Patient())
	s := newService(t, d)
	ctx := ctxAs("clerk")
	p, err := s.Create(ctx, req(1))
	if err != nil {
		t.Fatalf("create without billing: %v", err)
	}
	_, err = s.BillingAccount(ctx, p.ID)
	wantKind(t, err, errs.Unavailable)
	_, err = s.Invoices(ctx, p.ID)
	wantKind(t, err, errs.Unavailable)
}

// TestAccountOpenedAfterCallerLeft: the registration is committed, so opening the account
// goes on even when the caller's context ends right after.
func TestAccountOpenedAfterCallerLeft(t *testing.T) {
	d := dbtest.Open(t, db.SQLite, migrations.Patient())
	w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	seen := make(chan error, 1)
	s := patient.NewService(patient.NewStore(d), w, patient.Options{Billing: ctxBilling(seen), BillingTimeout: time.Minute})
	if _, err := s.Create(ctxAs("clerk"), req(1)); err != nil {
		t.Fatal(err)
	}
	if err := <-seen; err != nil {
		t.Fatalf("billing saw a dead context: %v", err)
	}
}

// ctxBilling reports the context state CreateAccount saw.
type ctxBilling chan error

func (c ctxBilling) CreateAccount(ctx context.Context, _, _, _ string) (patient.BillingAccount, error) {
	_, hasDeadline := ctx.Deadline()
	if !hasDeadline {
		c <- errors.New("no deadline")
	} else {
		c <- ctx.Err()
	}
	return patient.BillingAccount{}, nil
}
func (c ctxBilling) AccountFor(context.Context, string) (patient.BillingAccount, error) {
	return patient.BillingAccount{}, nil
}
func (c ctxBilling) InvoicesFor(context.Context, string) ([]patient.Invoice, error) { return nil, nil }

func mustCounter(t *testing.T, reg *prometheus.Registry, call, result string) float64 {
	return counterWith(t, reg, "pms_patient_billing_calls_total", map[string]string{"call": call, "result": result})
}

func mustRead(t *testing.T, reg *prometheus.Registry, kind, result string) float64 {
	return counterWith(t, reg, "pms_patient_reads_total", map[string]string{"kind": kind, "result": result})
}

// counterWith returns the value of the counter of family name with labels.
func counterWith(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}
