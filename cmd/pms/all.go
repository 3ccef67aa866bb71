package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pms/pms/migrations"

	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/gateway"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/dirlock"
	"github.com/pms/pms/pkg/platform/modules"
	"github.com/pms/pms/pkg/platform/tlsconf"
)

// runAll is `pms all`: every service that exists, in one process, in dependency order
// (analytics last).
func runAll(ctx context.Context, args []string, _, stderr io.Writer) error {
	var ac authConfig
	var pc patientConfig
	var bc billingConfig
	var gc gatewayConfig
	var nc analyticsConfig
	var bs backupSchedule
	own := map[string]*tlsconf.Files{}
	s, err := parseCommand("all", args, stderr, func(f *flags) {
		ac.register(f, "auth-")
		pc.register(f, "patient-")
		bc.register(f, "billing-")
		gc.register(f, "gateway-")
		nc.register(f, "analytics-")
		bs.register(f)
		for _, svc := range []string{"auth", "billing", "patient", "analytics", "gateway"} {
			files := &tlsconf.Files{}
			own[svc] = files
			env := "PMS_" + strings.ToUpper(svc) + "_TLS_"
			f.String(&files.Cert, svc+"-tls-cert", "", "the "+svc+" service's own certificate in pms all (instead of --tls-cert; needs --tls-ca): its identity on the wire", env+"CERT")
			f.String(&files.Key, svc+"-tls-key", "", "the key of --"+svc+"-tls-cert", env+"KEY")
		}
	})
	if err != nil {
		return err
	}
	return serve(ctx, s, func(ctx context.Context) ([]*module, error) {
		p := newAssembly(s)
		// build runs buildService with the service's settings: the shared ones, with its own
		// certificate when it has one.
		build := func(svc string, buildService func(ctx context.Context, s settings) (*module, error)) func(context.Context) (*module, error) {
			return func(ctx context.Context) (*module, error) {
				s, err := p.s.withOwnTLS(svc, *own[svc])
				if err != nil {
					return nil, err
				}
				return buildService(ctx, s)
			}
		}
		p.add("broker", nil, func(ctx context.Context) (*module, error) { return withEmbeddedBroker(ctx, &p.s) })
		p.add("auth", []string{"broker"}, build("auth", func(ctx context.Context, s settings) (*module, error) {
			m, a, err := buildAuth(ctx, s, ac, stderr)
			// The other services verify with the auth service's key ring in this process, and
			// obey its revocation table.
			p.s.keys, p.s.revocations = a.keys, a.revocations
			return m, err
		}))
		p.add("billing", []string{"broker", "auth"}, build("billing", func(ctx context.Context, s settings) (*module, error) { return buildBilling(ctx, s, bc) }))
		p.add("patient", []string{"broker", "auth", "billing"}, build("patient", func(ctx context.Context, s settings) (*module, error) {
			// The patient service calls billing at the address its listener bound.
			pc.billingAddr = p.grpcAddr("billing")
			return buildPatient(ctx, s, pc)
		}))
		// Analytics only reads the event topics; readiness never waits for its consumer group.
		p.add("analytics", []string{"broker", "auth"}, build("analytics", func(ctx context.Context, s settings) (*module, error) { return buildAnalytics(ctx, s, nc) }))
		p.add("gateway", []string{"auth", "billing", "patient", "analytics"}, build("gateway", func(ctx context.Context, s settings) (*module, error) {
			// The gateway dials every service at the address its listener bound.
			gc.authAddr, gc.billingAddr, gc.patientAddr = p.grpcAddr("auth"), p.grpcAddr("billing"), p.grpcAddr("patient")
			gc.analyticsAddr = p.grpcAddr("analytics")
			if gc.inProcess {
				gc.local = &gateway.Local{Patient: p.byName["patient"].endpoints.(patient.Set), Billing: p.byName["billing"].endpoints.(billing.Set),
					Auth: p.byName["auth"].endpoints.(auth.Set), Analytics: p.byName["analytics"].endpoints.(analytics.Set)}
			}
			return buildGateway(ctx, s, gc)
		}))
		// Scheduled backups (--backup-every), their metrics on the gateway's admin port.
		p.add("backup", []string{"gateway"}, func(context.Context) (*module, error) {
			actor, err := bs.scheduled(p.s, p.s.dataDir, p.byName["gateway"].reg, p.s.logger)
			if actor == nil || err != nil {
				return nil, err
			}
			return &module{name: "backup", servers: actor}, nil
		})
		return p.start(ctx)
	})
}

// assembly is the modules of `pms all`, each a service with its dependencies: the manager
// (pkg/platform/modules) starts them in dependency order and, when one fails, releases those
// built so far in reverse.
type assembly struct {
	s      settings
	mgr    *modules.Manager
	mods   []*module
	byName map[string]*module
	err    error
}

func newAssembly(s settings) *assembly {
	return &assembly{s: s, mgr: modules.New(), byName: map[string]*module{}}
}

// add registers the module name, built by build once deps have started; a nil module (the
// broker when brokers are configured) is nothing to run.
func (a *assembly) add(name string, deps []string, build func(ctx context.Context) (*module, error)) {
	a.err = errors.Join(a.err, a.mgr.Register(modules.Module{Name: name, Deps: deps,
		Start: func(ctx context.Context) error {
			m, err := build(ctx)
			if err != nil || m == nil {
				return err
			}
			a.mods = append(a.mods, m)
			a.byName[name] = m
			return nil
		},
		Stop: func(context.Context) error {
			if n := len(a.mods); n > 0 && a.mods[n-1].name == name {
				a.mods[n-1].closers.closeAll(a.s.shutdownTimeout, a.s.logger)
				a.mods = a.mods[:n-1]
			}
			return nil
		},
	}))
}

// grpcAddr is the address the gRPC listener of the started module name bound.
func (a *assembly) grpcAddr(name string) string { return a.byName[name].grpcAddr }

// start starts every module and returns them in start order.
func (a *assembly) start(ctx context.Context) ([]*module, error) {
	if a.err != nil {
		return nil, a.err
	}
	if err := a.mgr.Start(ctx); err != nil {
		return nil, err
	}
	return a.mods, nil
}

// serve builds the modules in order, runs their servers until ctx ends or one fails, then
// drains: servers stop first (in-flight requests finish), then each module's resources are
// released in reverse order (the audit writer flushes before its database closes).
func serve(ctx context.Context, s settings, build func(context.Context) ([]*module, error)) error {
	// The data folder is held shared while the process runs: `pms restore` (which takes it
	// exclusive) refuses to replace files under a running platform, and a folder with an
	// interrupted restore is refused here.
	lock, err := dirlock.Shared(s.dataDir)
	if err != nil {
		return err
	}
	defer lock.Release()
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
