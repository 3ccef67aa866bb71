// Command hop measures the floor under issue 20 item 3 ("through the gateway ≥ 1.0× nginx
// proxying the same service, with its gRPC hop"): the same hop with nothing of PMS in it.
// ops/bench/hop.sh runs four of its roles beside nginx and drives each path with wrk:
//
//   - http-upstream: a net/http server answering GET /patients/{id} with a fixed patient
//     record in JSON (what nginx proxies to, and the direct path);
//   - grpc-upstream: a gRPC server answering PatientService.GetPatient with the same record;
//   - gateway: the least a gateway with a gRPC hop can do: net/http in front, the id from the
//     path, one unary call over one client connection, the reply encoded as JSON. No token
//     check, no limits, no metrics, no logging;
//   - proxy: net/http's own reverse proxy (httputil.ReverseProxy) to http-upstream, for the
//     cost of Go's HTTP serving in a hop without gRPC.
//
// -conns and -bufs (HOP_FLAGS in hop.sh) vary what grpc-go lets a client tune: several
// connections used in turn, and its read and write buffers.
//
// If the bare gateway's hop already costs more CPU a request than nginx's, item 3's target
// cannot be met by any gateway built on net/http and grpc-go, whatever its own code does.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	patientv1 "github.com/pms/pms/proto/pms/patient/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// record is the patient every upstream answers with: the size and shape of the bench's
// record in the patient service.
var record = &patientv1.Patient{
	Id: "7f3c2a8e-6d1b-4c5e-9a0f-2b8d4e6c1a37", Mrn: "MRN-000000042", Name: "Bench",
	Email: "bench@example.org", Address: "x", DateOfBirth: "1990-01-01", RegisteredDate: "2026-12-07",
	Version: 1, CreatedAt: timestamppb.New(time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)),
	UpdatedAt: timestamppb.New(time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)), Confidentiality: "normal",
}

// patientJSON is the REST shape of a patient (docs/api.md), what each path writes back.
type patientJSON struct {
	ID              string    `json:"id"`
	MRN             string    `json:"mrn"`
	Name            string    `json:"name"`
	Email           string    `json:"email"`
	Address         string    `json:"address"`
	DateOfBirth     string    `json:"dateOfBirth"`
	RegisteredDate  string    `json:"registeredDate"`
	Version         int64     `json:"version"`
	CreatedAt       time.Time `json:"createdAt"`
	UpdatedAt       time.Time `json:"updatedAt"`
	Confidentiality string    `json:"confidentiality"`
}

func toJSON(p *patientv1.Patient) patientJSON {
	return patientJSON{ID: p.Id, MRN: p.Mrn, Name: p.Name, Email: p.Email, Address: p.Address,
		DateOfBirth: p.DateOfBirth, RegisteredDate: p.RegisteredDate, Version: p.Version,
		CreatedAt: p.CreatedAt.AsTime(), UpdatedAt: p.UpdatedAt.AsTime(), Confidentiality: p.Confidentiality}
}

// server answers GetPatient with the fixed record.
type server struct {
	patientv1.UnimplementedPatientServiceServer
}

func (server) GetPatient(context.Context, *patientv1.GetPatientRequest) (*patientv1.Patient, error) {
	return record, nil
}

// upstreamHandler answers every request with the record's JSON, encoded once.
func upstreamHandler() (http.Handler, error) {
	body, err := json.Marshal(toJSON(record))
	if err != nil {
		return nil, err
	}
	body = append(body, '\n')
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}), nil
}

// newUpstreamServer is the gRPC upstream: 64 stream workers, as the services' servers run
// (transport/grpc/server.go); bufs >= 0 sets its read and write buffers.
func newUpstreamServer(bufs int) *grpc.Server {
	opts := []grpc.ServerOption{grpc.NumStreamWorkers(64)}
	if bufs >= 0 {
		opts = append(opts, grpc.ReadBufferSize(bufs), grpc.WriteBufferSize(bufs))
	}
	s := grpc.NewServer(opts...)
	patientv1.RegisterPatientServiceServer(s, server{})
	return s
}

// gatewayHandler is the bare gateway: GET /api/patients/{id} as one GetPatient call, over
// conns client connections used in turn, the reply written as JSON.
func gatewayHandler(upstream string, conns, bufs int) (http.Handler, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if bufs >= 0 {
		opts = append(opts, grpc.WithReadBufferSize(bufs), grpc.WithWriteBufferSize(bufs))
	}
	var clients []patientv1.PatientServiceClient
	for range max(conns, 1) {
		conn, err := grpc.NewClient(upstream, opts...)
		if err != nil {
			return nil, err
		}
		clients = append(clients, patientv1.NewPatientServiceClient(conn))
	}
	var next atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, "/api/patients/")
		if !ok || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		client := clients[next.Add(1)%uint64(len(clients))]
		p, err := client.GetPatient(r.Context(), &patientv1.GetPatientRequest{Id: id})
		if err != nil {
			http.Error(w, `{"error":"unavailable"}`, http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(toJSON(p))
	}), nil
}

// proxyHandler is net/http's reverse proxy to upstream, /api stripped as nginx's
// configuration does.
func proxyHandler(upstream string) (http.Handler, error) {
	u, err := url.Parse("http://" + upstream)
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64}
	return http.StripPrefix("/api", rp), nil
}

func main() {
	role := flag.String("role", "", "http-upstream, grpc-upstream, gateway or proxy")
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	upstream := flag.String("upstream", "", "gateway: the grpc-upstream's address; proxy: the http-upstream's")
	conns := flag.Int("conns", 1, "gateway: client connections, used in turn")
	bufs := flag.Int("bufs", -1, "gateway and grpc-upstream: read and write buffer sizes (-1: grpc's default)")
	flag.Parse()
	var h http.Handler
	var err error
	switch *role {
	case "http-upstream":
		h, err = upstreamHandler()
	case "grpc-upstream":
		lis, lerr := net.Listen("tcp", *addr)
		if lerr != nil {
			log.Fatal(lerr)
		}
		log.Fatal(newUpstreamServer(*bufs).Serve(lis))
	case "gateway":
		h, err = gatewayHandler(*upstream, *conns, *bufs)
	case "proxy":
		h, err = proxyHandler(*upstream)
	default:
		log.Fatalf("unknown -role %q", *role)
	}
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe(*addr, h))
}
