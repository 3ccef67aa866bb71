// Package typed holds the generic helpers that keep go-kit's interface{} assertions in one
// place: a typed function becomes an endpoint, and an endpoint call comes back typed.
package typed

import (
	"context"
	"fmt"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/errs"
)

// Rejected is the request a transport hands on when decoding failed. Decoding runs before
// the endpoint, but the contract answers 401 and 403 before 400/413/415 (an unauthenticated
// caller learns nothing about the body it sent), so the decode error travels through the
// endpoint middleware (authentication, metrics, logging) and is returned by Endpoint, at the
// very end, instead of short-circuiting the transport.
type Rejected struct{ Err error }

// Reject wraps a transport decoder so that its error becomes a Rejected request.
func Reject(dec func(context.Context, any) (any, error)) func(context.Context, any) (any, error) {
	return func(ctx context.Context, v any) (any, error) {
		req, err := dec(ctx, v)
		if err != nil {
			return Rejected{Err: err}, nil
		}
		return req, nil
	}
}

// Endpoint adapts a typed function to a go-kit endpoint. A Rejected request returns its
// decode error; a request of another wrong type is a programming error in a transport and is
// reported as Internal, never a panic.
func Endpoint[Req, Resp any](f func(ctx context.Context, req Req) (Resp, error)) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		if r, ok := request.(Rejected); ok {
			return nil, r.Err
		}
		req, ok := request.(Req)
		if !ok {
			var want Req
			return nil, errs.Wrap(errs.Internal, "internal error", fmt.Errorf("typed: endpoint got %T, want %T", request, want))
		}
		return f(ctx, req)
	}
}

// Call invokes e with req and returns its response as Resp.
func Call[Resp any](ctx context.Context, e endpoint.Endpoint, req any) (Resp, error) {
	var zero Resp
	resp, err := e(ctx, req)
	if err != nil {
		return zero, err
	}
	r, ok := resp.(Resp)
	if !ok {
		return zero, errs.Wrap(errs.Internal, "internal error", fmt.Errorf("typed: endpoint returned %T, want %T", resp, zero))
	}
	return r, nil
}

// Chain applies middlewares so that the first one listed is the outermost.
func Chain(e endpoint.Endpoint, mws ...endpoint.Middleware) endpoint.Endpoint {
	for i := len(mws) - 1; i >= 0; i-- {
		e = mws[i](e)
	}
	return e
}
