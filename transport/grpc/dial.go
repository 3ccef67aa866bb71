package grpctransport

import (
	"crypto/tls"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// DialTimeout bounds one connection attempt to an upstream.
const DialTimeout = 2 * time.Second

// Dial connects to the gRPC service at addr — lazily, since an upstream may start later or be
// down, and answers unavailable until it is back — with the client options every caller
// shares (ClientDialOptions) and a quick reconnect, so an upstream that comes back is found
// within seconds rather than grpc-go's two minutes. It is the one way the gateway and the
// services dial each other. addr may be a listen address (":9001", "[::]:9001"): its
// unspecified host means this machine. With tlsCfg the connection is TLS (mutual when it
// holds a client certificate), else plain text.
func Dial(addr string, tlsCfg *tls.Config) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	return grpc.NewClient(DialTarget(addr), append(ClientDialOptions(),
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second,
		}, MinConnectTimeout: DialTimeout}))...)
}

// DialTarget turns a listen address into one to dial: a missing or unspecified host
// (":9001", "[::]:9001", what a listener reports) means this machine.
func DialTarget(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}
