package errs

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestKindsAndIs(t *testing.T) {
	notFound := New(NotFound, "patient not found")
	wrapped := fmt.Errorf("store: %w", &Error{Kind: NotFound, Message: "other text"})
	if !errors.Is(wrapped, notFound) {
		t.Fatal("errors.Is must match by kind across re-created errors (what a client rebuilds)")
	}
	if errors.Is(wrapped, New(Gone, "")) {
		t.Fatal("different kinds matched")
	}
	if KindOf(nil) != "" || KindOf(errors.New("x")) != Internal || KindOf(context.DeadlineExceeded) != Timeout {
		t.Fatal("KindOf defaults")
	}
	if e := As(errors.New("secret cause")); e.Kind != Internal || e.Message != "internal error" {
		t.Fatalf("As leaks or misclassifies: %+v", e)
	}
	for _, k := range Kinds {
		if !k.Known() {
			t.Fatalf("%s not known", k)
		}
	}
	if Kind("nonsense").Known() {
		t.Fatal("unknown kind accepted")
	}
	var f Fields
	if f.Err() != nil {
		t.Fatal("empty fields are no error")
	}
	f.Add("name", "first")
	f.Add("name", "second")
	if e := As(f.Err()); e.Kind != InvalidArgument || e.Fields["name"] != "first" {
		t.Fatalf("fields: %+v", e)
	}
}

// TestCallerGoneIsCanceled: a cancelled context is its own kind, never a timeout or an
// outage; a deadline stays Timeout (issue 13).
func TestCallerGoneIsCanceled(t *testing.T) {
	wrapped := fmt.Errorf("call: %w", context.Canceled)
	if KindOf(context.Canceled) != Canceled || KindOf(wrapped) != Canceled || As(wrapped).Kind != Canceled {
		t.Fatalf("cancelled context: KindOf %s, As %s; want canceled", KindOf(wrapped), As(wrapped).Kind)
	}
	if KindOf(FromContext(context.Canceled, "x")) != Canceled || KindOf(FromContext(context.DeadlineExceeded, "x")) != Timeout ||
		FromContext(nil, "x") != nil || FromContext(errors.New("other"), "x") != nil {
		t.Fatal("FromContext: want canceled, timeout, nil, nil")
	}
	if !errors.Is(FromContext(context.Canceled, "x"), context.Canceled) {
		t.Fatal("FromContext must keep the cause")
	}
}
