package grpctransport

import (
	"context"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pms/pms/pkg/platform/errs"
)

// This file holds the generic helpers every service binding shares, so that go-kit's
// interface{} hooks are adapted, and their values asserted, in exactly one place.

// assert returns v as a T. A value of another type is a wiring mistake in this package, so
// it is reported as Internal (never a panic, never the type names to a client).
func assert[T any](v any) (T, error) {
	t, ok := v.(T)
	if !ok {
		return t, errs.Wrap(errs.Internal, "internal error", fmt.Errorf("grpctransport: got %T, want %T", v, t))
	}
	return t, nil
}

// convert adapts a typed conversion to the untyped function shape go-kit wants for all four
// of its gRPC hooks (server decode and encode, client encode and decode).
func convert[From, To any](f func(From) (To, error)) func(context.Context, any) (any, error) {
	return func(_ context.Context, v any) (any, error) {
		from, err := assert[From](v)
		if err != nil {
			return nil, err
		}
		return f(from)
	}
}

// total is convert for a conversion that cannot fail.
func total[From, To any](f func(From) To) func(context.Context, any) (any, error) {
	return convert(func(from From) (To, error) { return f(from), nil })
}

// toTimestamp returns t as a Timestamp; the zero time is "absent" (nil).
func toTimestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// fromTimestamp returns ts as a UTC time; an absent Timestamp is the zero time.
func fromTimestamp(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// timestampField is fromTimestamp for a request field: an out-of-range Timestamp is
// recorded in f under the contract's field name instead of becoming some other instant.
func timestampField(f *errs.Fields, name string, ts *timestamppb.Timestamp) time.Time {
	if ts != nil && !ts.IsValid() {
		f.Add(name, "must be a valid instant")
		return time.Time{}
	}
	return fromTimestamp(ts)
}

// int32Of narrows a limit for the wire, saturating, so an out-of-range value stays out of
// range (and is refused by the server's validation) rather than wrapping into range.
func int32Of(n int) int32 {
	switch {
	case n > math.MaxInt32:
		return math.MaxInt32
	case n < math.MinInt32:
		return math.MinInt32
	}
	return int32(n)
}

// clone returns a copy of *p, or nil, so a request never shares memory with a message.
func clone[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// mapSlice converts every element of in. The result is never nil: the wire cannot tell an
// empty list from an absent one, and a list in the contract is always a JSON array ([],
// never null), whichever wire it came over.
func mapSlice[From, To any](in []From, f func(From) To) []To {
	out := make([]To, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
