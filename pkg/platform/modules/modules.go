// Package modules starts the parts of a process in dependency order and stops them in
// reverse, in the spirit of Grafana dskit's module manager, kept small: each module has a
// name, the names it depends on, a start and a stop. `pms all` runs every service as one.
package modules

import (
	"context"
	"errors"
	"fmt"
)

// Module is one part of the process.
type Module struct {
	Name string
	// Deps are the modules that must have started before this one.
	Deps []string
	// Start brings the module up (it may use what its dependencies made).
	Start func(ctx context.Context) error
	// Stop releases it; nil means nothing to release.
	Stop func(ctx context.Context) error
}

// Manager holds modules and the order they started in.
type Manager struct {
	mods    map[string]Module
	names   []string
	started []string
}

// New returns an empty manager.
func New() *Manager { return &Manager{mods: map[string]Module{}} }

// Register adds m; registration order breaks ties between modules that do not depend on
// each other.
func (m *Manager) Register(mod Module) error {
	if _, dup := m.mods[mod.Name]; dup || mod.Name == "" {
		return fmt.Errorf("modules: duplicate or empty name %q", mod.Name)
	}
	m.mods[mod.Name] = mod
	m.names = append(m.names, mod.Name)
	return nil
}

// Order returns the start order: every module after its dependencies. An unknown
// dependency or a cycle is an error.
func (m *Manager) Order() ([]string, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var out []string
	var visit func(name, from string) error
	visit = func(name, from string) error {
		mod, ok := m.mods[name]
		if !ok {
			return fmt.Errorf("modules: %s depends on unknown module %q", from, name)
		}
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("modules: dependency cycle through %q", name)
		}
		state[name] = visiting
		for _, d := range mod.Deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = done
		out = append(out, name)
		return nil
	}
	for _, n := range m.names {
		if err := visit(n, n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Start starts every module in dependency order. If one fails, those already started are
// stopped in reverse order and the error is returned.
func (m *Manager) Start(ctx context.Context) error {
	order, err := m.Order()
	if err != nil {
		return err
	}
	for _, n := range order {
		if err := m.mods[n].Start(ctx); err != nil {
			return errors.Join(fmt.Errorf("module %s: %w", n, err), m.Stop(ctx))
		}
		m.started = append(m.started, n)
	}
	return nil
}

// Stop stops the started modules in reverse order, each once.
func (m *Manager) Stop(ctx context.Context) error {
	var err error
	for i := len(m.started) - 1; i >= 0; i-- {
		if stop := m.mods[m.started[i]].Stop; stop != nil {
			if e := stop(ctx); e != nil {
				err = errors.Join(err, fmt.Errorf("module %s: %w", m.started[i], e))
			}
		}
	}
	m.started = nil
	return err
}
