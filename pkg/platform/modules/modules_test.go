package modules

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestStartInDependencyOrderStopInReverse(t *testing.T) {
	var log []string
	m := New()
	add := func(name string, fail bool, deps ...string) {
		t.Helper()
		err := m.Register(Module{Name: name, Deps: deps,
			Start: func(context.Context) error {
				if fail {
					return errors.New("boom")
				}
				log = append(log, "start "+name)
				return nil
			},
			Stop: func(context.Context) error { log = append(log, "stop "+name); return nil }})
		if err != nil {
			t.Fatal(err)
		}
	}
	add("gateway", false, "patient", "auth")
	add("patient", false, "billing", "auth")
	add("billing", false, "auth")
	add("auth", false, "broker")
	add("broker", false)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"start broker", "start auth", "start billing", "start patient", "start gateway",
		"stop gateway", "stop patient", "stop billing", "stop auth", "stop broker"}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("got %v", log)
	}

	// A failing start stops what started, in reverse.
	log = nil
	m = New()
	add("a", false)
	add("b", false, "a")
	add("c", true, "b")
	if err := m.Start(context.Background()); err == nil {
		t.Fatal("want the failure")
	}
	if want := []string{"start a", "start b", "stop b", "stop a"}; !reflect.DeepEqual(log, want) {
		t.Fatalf("got %v", log)
	}
}

func TestBadGraphs(t *testing.T) {
	m := New()
	_ = m.Register(Module{Name: "a", Deps: []string{"b"}})
	_ = m.Register(Module{Name: "b", Deps: []string{"a"}})
	if _, err := m.Order(); err == nil {
		t.Fatal("cycle accepted")
	}
	m = New()
	_ = m.Register(Module{Name: "a", Deps: []string{"nope"}})
	if _, err := m.Order(); err == nil {
		t.Fatal("unknown dependency accepted")
	}
	if err := m.Register(Module{Name: "a"}); err == nil {
		t.Fatal("duplicate accepted")
	}
}
