package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/pms/pms/migrations"

	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/modules"
)

// runAll is `pms all`: every service that exists, in one process, in dependency order
// (analytics last).
func runAll(ctx context.Context, args []string, _, stderr io.Writer) error {
	var ac authConfig
	var pc patientConfig
	var bc billingConfig
	var gc gatewayConfig
	var nc analyticsConfig
	s, err := parseCommand("all", args, stderr, func(f *flags) {
		ac.register(f, "auth-")
		pc.register(f, "patient-")
		bc.register(f, "billing-")
		gc.register(f, "gateway-")
		nc.register(f, "analytics-")
	})
	if err != nil {
		return err
	}
	return serve(ctx, s, func(ctx context.Context) ([]*module, error) {
		// Each service is a module with its dependencies; the manager starts them in
		// dependency order and, when one fails, releases those built so far in reverse.
		var mods []*module
		var keysErr error
		mgr := modules.New()
		add := func(name string, deps []string, build func(ctx context.Context) (*module, error)) {
			keysErr = errors.Join(keysErr, mgr.Register(modules.Module{Name: name, Deps: deps,
				Start: func(ctx context.Context) error {
					m, err := build(ctx)
					if err != nil || m == nil {
						return err
					}
					mods = append(mods, m)
					return nil
				},
				Stop: func(context.Context) error {
					if n := len(mods); n > 0 && mods[n-1].name == name {
						mods[n-1].closers.closeAll(s.shutdownTimeout, s.logger)
						mods = mods[:n-1]
					}
					return nil
				},
			}))
		}
		byName := map[string]*module{}
		add("broker", nil, func(ctx context.Context) (*module, error) { return withEmbeddedBroker(ctx, &s) })
		add("auth", []string{"broker"}, func(ctx context.Context) (*module, error) {
			a, keys, err := buildAuth(ctx, s, ac, stderr)
			if err == nil {
				// The other services verify with the auth service's key ring in this process.
				s.keys = keys
				byName["auth"] = a
			}
			return a, err
		})
		add("billing", []string{"broker", "auth"}, func(ctx context.Context) (*module, error) {
			b, err := buildBilling(ctx, s, bc)
			if err == nil {
				byName["billing"] = b
			}
			return b, err
		})
		add("patient", []string{"broker", "auth", "billing"}, func(ctx context.Context) (*module, error) {
			// The patient service calls billing at the address its listener bound.
			pc.billingAddr = byName["billing"].grpcAddr
			p, err := buildPatient(ctx, s, pc)
			if err == nil {
				byName["patient"] = p
			}
			return p, err
		})
		// Analytics only reads the event topics; readiness never waits for its consumer group.
		add("analytics", []string{"broker", "auth"}, func(ctx context.Context) (*module, error) {
			n, err := buildAnalytics(ctx, s, nc)
			if err == nil {
				byName["analytics"] = n
			}
			return n, err
		})
		add("gateway", []string{"auth", "billing", "patient", "analytics"}, func(ctx context.Context) (*module, error) {
			// The gateway dials every service at the address its listener bound.
			gc.authAddr, gc.billingAddr, gc.patientAddr = byName["auth"].grpcAddr, byName["billing"].grpcAddr, byName["patient"].grpcAddr
			gc.analyticsAddr = byName["analytics"].grpcAddr
			return buildGateway(ctx, s, gc)
		})
		if keysErr != nil {
			return nil, keysErr
		}
		if err := mgr.Start(ctx); err != nil {
			return nil, err
		}
		return mods, nil
	})
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
	var ac authConfig
	var pc patientConfig
	var bc billingConfig
	var nc analyticsConfig
	s, err := parseCommand("migrate", args, stderr, func(f *flags) {
		ac.registerStorage(f)
		pc.register(f, "patient-")
		bc.register(f, "billing-")
		nc.register(f, "analytics-")
	})
	if err != nil {
		return err
	}
	for _, d := range []struct {
		name, url string
		files     db.Sets
	}{
		{"auth", ac.databaseURL, migrations.Auth()}, {"patient", pc.databaseURL, migrations.Patient()},
		{"billing", bc.databaseURL, migrations.Billing()}, {"analytics", nc.databaseURL, migrations.Analytics()},
	} {
		sd, err := openServiceDB(ctx, s, d.name, d.url, d.files)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: migrated (%s)\n", d.name, dialectName(sd))
		_ = sd.Close()
	}
	return nil
}

func dialectName(d *db.DB) string {
	if d.Schema != "" {
		return string(d.Dialect) + ", schema " + d.Schema
	}
	return string(d.Dialect)
}
