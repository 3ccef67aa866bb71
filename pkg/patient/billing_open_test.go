package patient_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
)

// heldBilling is a fakeBilling whose CreateAccount waits until the test releases it.
type heldBilling struct {
	*fakeBilling
	entered chan string
	release chan struct{}
}

func (h *heldBilling) CreateAccount(ctx context.Context, pid, name, email string) (patient.BillingAccount, error) {
	h.entered <- pid
	<-h.release
	return h.fakeBilling.CreateAccount(ctx, pid, name, email)
}

func newHeld() *heldBilling {
	return &heldBilling{fakeBilling: &fakeBilling{accounts: map[string]patient.BillingAccount{}, invoices: map[string][]patient.Invoice{}},
		entered: make(chan string, 16), release: make(chan struct{})}
}

// within fails the test when fn has not returned in a minute: a guard against a hang, not a
// timing assertion.
func within[T any](t *testing.T, what string, fn func() T) T {
	t.Helper()
	out := make(chan T, 1)
	go func() { out <- fn() }()
	select {
	case v := <-out:
		return v
	case <-time.After(time.Minute):
		t.Fatalf("%s did not return", what)
		panic("unreachable")
	}
}

// TestCreateAnswersBeforeBilling: opening the billing account is off the registration's
// path (issue 20 item 4): with billing holding every call, the create still answers, the
// account is opened afterwards, and a read of it waits for that open and finds the account.
func TestCreateAnswersBeforeBilling(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable})
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		hb := newHeld()
		s := patient.NewService(patient.NewStore(d), w, patient.Options{Billing: hb})
		ctx := ctxAs("clerk")
		type res struct {
			p   patient.Patient
			err error
		}
		r := within(t, "create while billing holds", func() res { p, err := s.Create(ctx, req(1)); return res{p, err} })
		if r.err != nil {
			t.Fatal(r.err)
		}
		if pid := <-hb.entered; pid != r.p.ID {
			t.Fatalf("billing asked for %s, want %s", pid, r.p.ID)
		}
		read := make(chan error, 1)
		go func() { _, err := s.BillingAccount(ctx, r.p.ID); read <- err }()
		close(hb.release)
		select {
		case err := <-read:
			if err != nil {
				t.Fatalf("account read after the open: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("account read did not return")
		}
	})
}

// TestAccountQueueFull: beyond AccountQueue registrations waiting for billing, an account is
// left to the patient topic (logged by id, never PHI) and the registration still answers.
func TestAccountQueueFull(t *testing.T) {
	d := dbtest.Open(t, db.SQLite, migrations.Patient())
	w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	hb := newHeld()
	var logs bytes.Buffer
	s := patient.NewService(patient.NewStore(d), w, patient.Options{Billing: hb, AccountQueue: 1, AccountWorkers: 1,
		Logger: log.NewLogfmtLogger(log.NewSyncWriter(&logs))})
	ctx := ctxAs("clerk")
	p1, err := s.Create(ctx, req(1))
	if err != nil {
		t.Fatal(err)
	}
	<-hb.entered
	p2 := within(t, "create with the queue full", func() patient.Patient {
		p, err := s.Create(ctx, req(2))
		if err != nil {
			t.Error(err)
		}
		return p
	})
	close(hb.release)
	if _, err := s.BillingAccount(ctx, p1.ID); err != nil {
		t.Fatalf("first account: %v", err)
	}
	_, err = s.BillingAccount(ctx, p2.ID)
	wantKind(t, err, errs.NotFound)
	if created := hb.createdCalls(); len(created) != 1 {
		t.Fatalf("billing got %v, want only the first", created)
	}
	if l := logs.String(); !strings.Contains(l, "queue full") || !strings.Contains(l, p2.ID) || strings.Contains(l, "p2@example.org") {
		t.Fatalf("log: %s", l)
	}
}
