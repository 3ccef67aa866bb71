package grpctransport

import (
	"crypto/tls"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // the client side of health checking (healthCheckConfig)
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
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
//
// addr may also name several replicas: a comma-separated list of addresses
// ("10.0.0.1:9000,10.0.0.2:9000"), or a DNS name that resolves to several, written
// "dns:///patient:9000" (a Kubernetes headless service). Calls are then spread round-robin
// over the replicas that pass gRPC health checks (grpc.health.v1, which every PMS server
// serves and turns NOT_SERVING while it drains): a replica that is down, unreachable or
// draining gets no calls until it is healthy again, and the others carry the load; one that
// is up but keeps failing is left out for a while (OutlierPolicy).
func Dial(addr string, tlsCfg *tls.Config) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	opts := append(ClientDialOptions(),
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second,
		}, MinConnectTimeout: DialTimeout}))
	target, replicas := ReplicaTarget(addr)
	if replicas == nil && !strings.HasPrefix(target, "dns:///") {
		return grpc.NewClient(target, opts...)
	}
	opts = append(opts, grpc.WithDefaultServiceConfig(replicaServiceConfig))
	if replicas != nil {
		r := manual.NewBuilderWithScheme("pms-replicas")
		state := resolver.State{}
		for _, a := range replicas {
			// Each replica's TLS name is its own host, as when it is dialled alone (the
			// target's authority, "upstream", names no certificate).
			host, _, _ := net.SplitHostPort(a)
			state.Addresses = append(state.Addresses, resolver.Address{Addr: a, ServerName: host})
		}
		r.InitialState(state)
		opts = append(opts, grpc.WithResolvers(r))
	}
	return grpc.NewClient(target, opts...)
}

// replicaServiceConfig spreads calls round-robin over the replicas whose health check
// (grpc.health.v1, the server as a whole: service "") says SERVING, leaving out one that
// keeps failing (OutlierPolicy).
const replicaServiceConfig = `{"loadBalancingConfig":[{"` + OutlierPolicy + `":{}}],"healthCheckConfig":{"serviceName":""}}`

// ReplicaTarget reads addr as Dial does: a comma-separated list gives the target of the
// manual resolver and the replicas' addresses (each through DialTarget, duplicates and
// blanks dropped; one address left is dialled alone); anything else is dialled as it is
// (through DialTarget), replicas nil.
func ReplicaTarget(addr string) (target string, replicas []string) {
	if !strings.Contains(addr, ",") {
		return DialTarget(addr), nil
	}
	seen := map[string]bool{}
	for _, a := range strings.Split(addr, ",") {
		if a = strings.TrimSpace(a); a != "" && !seen[DialTarget(a)] {
			seen[DialTarget(a)] = true
			replicas = append(replicas, DialTarget(a))
		}
	}
	if len(replicas) == 1 {
		return replicas[0], nil
	}
	return "pms-replicas:///upstream", replicas
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
