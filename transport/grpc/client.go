package grpctransport

import (
	"context"

	kitjwt "github.com/go-kit/kit/auth/jwt"
	"github.com/go-kit/kit/endpoint"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/pms/pms/pkg/platform/observe"
)

// clientFactory builds the client endpoints of one gRPC service over one connection.
type clientFactory struct {
	conn    *grpc.ClientConn
	service string
}

// endpoint returns the client endpoint of one method: the go-kit client with the metadata
// every call carries, its errors converted back to the server's with FromStatus.
func (c clientFactory) endpoint(method string, enc kitgrpc.EncodeRequestFunc, dec kitgrpc.DecodeResponseFunc, reply any) endpoint.Endpoint {
	e := kitgrpc.NewClient(c.conn, c.service, method, enc, dec, reply,
		kitgrpc.ClientBefore(forwardRequestID, forwardClientAddr, forwardTransport, forwardUserAgent, forwardCheckedBy, kitjwt.ContextToGRPC()),
	).Endpoint()
	return func(ctx context.Context, req any) (any, error) {
		resp, err := e(ctx, req)
		if err != nil {
			return nil, FromStatus(err)
		}
		return resp, nil
	}
}

// forwardRequestID sends the context's request id, so the callee logs under the same id.
func forwardRequestID(ctx context.Context, md *metadata.MD) context.Context {
	if id := observe.RequestID(ctx); id != "" {
		md.Set(RequestIDKey, id)
	}
	return ctx
}

// forwardClientAddr sends the original caller's address, so that throttling and audit rows
// of the callee see the real client rather than this process (the callee believes it only
// from a trusted proxy).
func forwardClientAddr(ctx context.Context, md *metadata.MD) context.Context {
	if addr := observe.ClientAddr(ctx); addr != "" {
		md.Set(ForwardedForKey, addr)
	}
	return ctx
}

// forwardTransport sends the transport the original request came in on (the gateway's
// "http"), so the callee's access log records how the user reached the platform (believed
// only from a trusted proxy).
func forwardTransport(ctx context.Context, md *metadata.MD) context.Context {
	if t := observe.Origin(ctx); forwardedTransports[t] {
		md.Set(TransportKey, t)
	}
	return ctx
}

// forwardUserAgent sends the original caller's user agent (the gateway's HTTP client's), so
// the auth service records the browser or app of a session rather than this process's gRPC
// library.
func forwardUserAgent(ctx context.Context, md *metadata.MD) context.Context {
	if ua := observe.UserAgent(ctx); ua != "" {
		md.Set(UserAgentKey, ua)
	}
	return ctx
}

// checkedByClaim is the context key of what this process claims with CheckedByKey: set only
// by the patient service's view of billing (patientBilling), never copied from an incoming
// call, so a claim is always this process's own.
type checkedByClaim struct{}

// claimCheckedBy returns ctx whose outgoing calls say (CheckedByKey) that service has
// checked the caller's access to the call's patient.
func claimCheckedBy(ctx context.Context, service string) context.Context {
	return context.WithValue(ctx, checkedByClaim{}, service)
}

// forwardCheckedBy sends this process's claim (claimCheckedBy), if it made one.
func forwardCheckedBy(ctx context.Context, md *metadata.MD) context.Context {
	if by, _ := ctx.Value(checkedByClaim{}).(string); by != "" {
		md.Set(CheckedByKey, by)
	}
	return ctx
}
