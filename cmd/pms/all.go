package main

import (
	"context"
	"fmt"
	"io"

	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/pms/pms/pkg/platform/db"
)

// runAll is `pms all`: every service that exists, in one process, in dependency order
// (analytics last).
func runAll(ctx context.Context, args []string, _, stderr io.Writer) error {
	f := newFlags("all", stderr)
	var cm common
	var ac authConfig
	var pc patientConfig
	var bc billingConfig
	var nc analyticsConfig
	cm.register(f)
	ac.register(f, "auth-")
	pc.register(f, "patient-")
	bc.register(f, "billing-")
	nc.register(f, "analytics-")
	if err := f.parse(args); err != nil {
		return err
	}
	s, err := cm.parse(stderr)
	if err != nil {
		return err
	}
	return serve(ctx, s, func(ctx context.Context) ([]*module, error) {
		var mods []*module
		k, err := withEmbeddedBroker(ctx, &s)
		if err != nil {
			return nil, err
		}
		if k != nil {
			mods = append(mods, k)
		}
		a, keys, err := buildAuth(ctx, s, ac, stderr)
		if err != nil {
			closeModules(mods, s)
			return nil, err
		}
		mods = append(mods, a)
		// The other services verify with the auth service's key ring in this process.
		s.keys = keys
		b, err := buildBilling(ctx, s, bc)
		if err != nil {
			closeModules(mods, s)
			return nil, err
		}
		mods = append(mods, b)
		// The patient service calls billing at the address its listener bound.
		pc.billingAddr = b.grpcAddr
		p, err := buildPatient(ctx, s, pc)
		if err != nil {
			closeModules(mods, s)
			return nil, err
		}
		mods = append(mods, p)
		// Analytics last: it only reads the event topics, and readiness never waits for its
		// consumer group to form.
		n, err := buildAnalytics(ctx, s, nc)
		if err != nil {
			closeModules(mods, s)
			return nil, err
		}
		return append(mods, n), nil
	})
}

// closeModules releases modules built so far, in reverse order, when a later one failed.
func closeModules(mods []*module, s settings) {
	for i := len(mods) - 1; i >= 0; i-- {
		mods[i].closers.closeAll(s.shutdownTimeout, s.logger)
	}
}

// serve builds the modules in order, runs their servers until ctx ends or one fails, then
// drains: servers stop first (in-flight requests finish), then each module's resources are
// released in reverse order (the audit writer flushes before its database closes).
func serve(ctx context.Context, s settings, build func(context.Context) ([]*module, error)) error {
	mods, err := build(ctx)
	if err != nil {
		return err
	}
	var g run.Group
	addContext(&g, ctx)
	for _, m := range mods {
		m.servers(&g)
	}
	_ = level.Info(s.logger).Log("msg", "started", "modules", len(mods))
	err = g.Run()
	_ = level.Info(s.logger).Log("msg", "stopping")
	for i := len(mods) - 1; i >= 0; i-- {
		mods[i].closers.closeAll(s.shutdownTimeout, s.logger)
	}
	_ = level.Info(s.logger).Log("msg", "stopped")
	return err
}

// runMigrate is `pms migrate`: apply every service's migrations and exit.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("migrate", stderr)
	var cm common
	var ac authConfig
	var pc patientConfig
	var bc billingConfig
	var nc analyticsConfig
	cm.register(f)
	ac.registerStorage(f)
	pc.register(f, "patient-")
	bc.register(f, "billing-")
	nc.register(f, "analytics-")
	if err := f.parse(args); err != nil {
		return err
	}
	s, err := cm.parse(stderr)
	if err != nil {
		return err
	}
	ad, err := openAuthDB(ctx, s, ac)
	if err != nil {
		return err
	}
	defer ad.Close()
	fmt.Fprintf(stdout, "auth: migrated (%s)\n", dialectName(ad))
	d, err := openPatientDB(ctx, s, pc)
	if err != nil {
		return err
	}
	defer d.Close()
	fmt.Fprintf(stdout, "patient: migrated (%s)\n", dialectName(d))
	bd, err := openBillingDB(ctx, s, bc)
	if err != nil {
		return err
	}
	defer bd.Close()
	fmt.Fprintf(stdout, "billing: migrated (%s)\n", dialectName(bd))
	nd, err := openAnalyticsDB(ctx, s, nc)
	if err != nil {
		return err
	}
	defer nd.Close()
	fmt.Fprintf(stdout, "analytics: migrated (%s)\n", dialectName(nd))
	return nil
}

func dialectName(d *db.DB) string {
	if d.Schema != "" {
		return string(d.Dialect) + ", schema " + d.Schema
	}
	return string(d.Dialect)
}
