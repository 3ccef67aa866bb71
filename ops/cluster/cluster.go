// Package cluster runs the platform as an operator would: every service a separate `pms`
// process (broker, auth, billing, patient, analytics, gateway) on loopback ports chosen up
// front, one PostgreSQL database, one data folder per process. The fault suite and the soak
// drive it; a process can be stopped with SIGTERM, killed with SIGKILL and restarted on the
// same ports and folder, which is what a supervisor does.
//
// A cluster runs TLS + mTLS by default, as production does: every process serves and presents
// a certificate of its own name (Certs), every listener (HTTP, gRPC, admin, Kafka) speaks TLS,
// gRPC requires the caller's certificate, and Kafka is TLS with SASL. The package's HTTP
// clients (Client, FreshConns, Do, the helpers of hangup.go) trust the clusters' CA;
// Options.Plain is the escape hatch to plain text.
package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/platform/broker"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/tlsconf"
)

// AdminEmail and AdminPassword are the bootstrap admin of every cluster.
const (
	AdminEmail    = "admin@cluster.test"
	AdminPassword = "cluster-operator-passphrase-0123"
)

// Order is the start order: each process finds the ones before it already serving.
var Order = []string{"broker", "auth", "billing", "patient", "analytics", "gateway"}

// Options configure Start.
type Options struct {
	// DatabaseURL is the PostgreSQL (or SQLite) database every service uses; each keeps its
	// own schema in it.
	DatabaseURL string
	// Extra are flags added to one process's command line, by process name.
	Extra map[string][]string
	// Env are variables (KEY=value) added to every process's environment, such as
	// GOMAXPROCS=1 for services that share a small machine (the soak's SOAK_GOMAXPROCS).
	Env []string
	// DatabaseConns is each service's PostgreSQL pool size; 0 is 8, so that five services
	// and a test running beside them stay under the server's max_connections (100).
	DatabaseConns int
	// NoRateLimits turns every rate limit off (each service's per-endpoint limit and the
	// gateway's per-client one): the suites are one client at full speed, and a 429 would hide
	// what they measure.
	NoRateLimits bool
	// LogLevel of every process; "" is warn.
	LogLevel string
	// Logs, when set, receives every process's standard error, each line prefixed with its
	// name (the suites keep the last lines to print on failure).
	Logs io.Writer
	// Plain runs every listener and client in plain text (no --tls-* flags, no --kafka-tls)
	// instead of the default TLS + mTLS: for a test that must speak plain bytes to a port.
	Plain bool
	// Replicas runs more than one process of a service (billing, patient; by service, the
	// total): the extra ones are named "<service>-2", "<service>-3", …, each with its own
	// ports and data folder and the service's certificate (its identity), started right after
	// the first; the gateway, and patient for billing, dial them all (a comma-separated list).
	Replicas map[string]int
}

// Cluster is a running platform.
type Cluster struct {
	Bin string
	Dir string
	// Scheme of every HTTP listener: "https" (the default) or "http" (Options.Plain).
	Scheme string
	procs  map[string]*Proc
	ports  map[string]string // "patient/http" → 127.0.0.1:port
	kafka  *sarama.Config    // the broker's admin principal, over TLS unless Plain
}

// Proc is one `pms` process; its arguments stay the same across restarts.
type Proc struct {
	Name  string
	Args  []string
	Env   []string // added to the test's environment (Options.Env)
	Admin string   // admin address ("" for the broker)
	Addr  string   // the address that answers when it is up (admin, or the broker's)
	// Scheme of the admin port: "https", or "http" in a plain cluster.
	Scheme string
	logs   io.Writer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// Binary builds `pms` once per test binary and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "pms-cluster-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "pms")
		cmd := exec.Command("go", "build", "-o", buildBin, "./cmd/pms")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

var (
	certsOnce sync.Once
	certsDir  string
	certsTLS  *tls.Config
	certsErr  error
)

// certs generates, once per test binary, a CA and one certificate per process name of Order
// plus "all" (for `pms all`) into a temporary folder: every cluster of the binary shares the
// CA, so the package-level clients trust it. The folder is left behind like the binary's.
func certs() (string, *tls.Config, error) {
	certsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pms-cluster-certs-")
		if err != nil {
			certsErr = err
			return
		}
		if err := tlsconf.Generate(dir, append(slices.Clone(Order), "all"), nil, time.Now()); err != nil {
			certsErr = fmt.Errorf("certificates: %w", err)
			return
		}
		certsDir = dir
		certsTLS, certsErr = tlsconf.Client(tlsconf.Files{CA: filepath.Join(dir, "ca.pem")})
	})
	return certsDir, certsTLS, certsErr
}

// Certs returns the folder of the certificates every cluster of this test binary uses:
// ca.pem, and <name>.pem with <name>-key.pem for each process of Order and for "all". Each
// process serves and presents its own (the guard honours a svc:<name> token only from the
// certificate of that name).
func Certs(t testing.TB) string {
	t.Helper()
	dir, _, err := certs()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TLSConfig is a client configuration trusting the clusters' CA (a copy of its own for each
// caller), with no client certificate: what an outside client has.
func TLSConfig() (*tls.Config, error) {
	_, c, err := certs()
	if err != nil {
		return nil, err
	}
	return c.Clone(), nil
}

// HTTPTransport is an HTTP transport that trusts the clusters' CA for https:// URLs (the
// certificates are made on its first TLS connection) and speaks plain HTTP to http:// ones.
// It stays on HTTP/1.1 over TLS, as over plain text, so that the suites' connection-level
// behaviour (keep-alive races, hang-ups) is the same in both.
func HTTPTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext: dialer.DialContext,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			cfg, err := TLSConfig()
			if err != nil {
				return nil, err
			}
			return (&tls.Dialer{NetDialer: dialer, Config: cfg}).DialContext(ctx, network, addr)
		},
	}
}

// freePort picks a free loopback port for a process that binds it later. It is chosen at
// random below the kernel's ephemeral range (32768 and up on Linux), not with :0: a port the
// kernel hands out for :0 or for an outgoing connection of another test running beside the
// suite (go test runs packages in parallel) could be taken again before our process binds it,
// which CI met as "bind: address already in use". Ports already picked by this test binary
// are never picked twice.
func freePort(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if portsTaken[port] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // in use
		}
		_ = l.Close()
		portsTaken[port] = true
		return l.Addr().String()
	}
	t.Fatal("no free loopback port found in 20000-31999")
	return ""
}

var (
	portsMu    sync.Mutex
	portsTaken = map[int]bool{}
)

// Start starts every process in Order and waits until each is ready. The processes are
// killed when the test ends.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	c := &Cluster{Bin: Binary(t), Dir: t.TempDir(), Scheme: "https", procs: map[string]*Proc{}, ports: map[string]string{}}
	if o.Plain {
		c.Scheme = "http"
	}
	// names is every process in start order, replicas right after their first; service is
	// the subcommand (and certificate) of each.
	var names []string
	service := map[string]string{}
	for _, name := range Order {
		names, service[name] = append(names, name), name
		for r := 2; r <= o.Replicas[name]; r++ {
			replica := fmt.Sprintf("%s-%d", name, r)
			names, service[replica] = append(names, replica), name
		}
	}
	for _, s := range names[1:] {
		for _, k := range []string{"http", "grpc", "admin"} {
			if s == "gateway" && k == "grpc" {
				continue
			}
			c.ports[s+"/"+k] = freePort(t)
		}
	}
	// grpcAddrs is every replica's gRPC address of service, comma-separated.
	grpcAddrs := func(of string) string {
		var out []string
		for _, name := range names {
			if service[name] == of {
				out = append(out, c.ports[name+"/grpc"])
			}
		}
		return strings.Join(out, ",")
	}
	c.ports["broker/kafka"] = freePort(t)
	conns := o.DatabaseConns
	if conns == 0 {
		conns = 8
	}
	level := o.LogLevel
	if level == "" {
		level = "warn"
	}
	// The broker creates the principals' passwords on its start; every service reads its own.
	credentials := "--kafka-credentials=" + filepath.Join(c.Dir, "kafka-credentials")
	common := func(name string) []string {
		dir := filepath.Join(c.Dir, name)
		return []string{service[name], "--data-dir=" + dir, "--database-url=" + o.DatabaseURL, "--log-format=logfmt",
			"--log-level=" + level, "--kafka-brokers=" + c.ports["broker/kafka"], "--kafka-addr=" + c.ports["broker/kafka"], credentials,
			"--auth-jwks-url=" + c.URL("auth/http") + "/.well-known/jwks.json", "--auth-revocations-addr=" + c.ports["auth/grpc"], "--shutdown-timeout=20s",
			"--database-max-conns=" + strconv.Itoa(conns)}
	}
	serve := func(name string) []string {
		return append(common(name), "--http-addr="+c.ports[name+"/http"], "--grpc-addr="+c.ports[name+"/grpc"],
			"--admin-addr="+c.ports[name+"/admin"])
	}
	args := map[string][]string{}
	for _, name := range names {
		switch service[name] {
		case "broker":
			args[name] = []string{"broker", "--data-dir=" + filepath.Join(c.Dir, "broker"), "--kafka-addr=" + c.ports["broker/kafka"], credentials,
				"--log-format=logfmt", "--log-level=" + level}
		case "auth":
			args[name] = append(serve(name), "--bootstrap-admin-email="+AdminEmail)
		case "patient":
			args[name] = append(serve(name), "--billing-addr="+grpcAddrs("billing"))
		case "gateway":
			args[name] = append(common(name), "--http-addr="+c.ports["gateway/http"], "--admin-addr="+c.ports["gateway/admin"],
				"--patient-addr="+grpcAddrs("patient"), "--billing-addr="+grpcAddrs("billing"),
				"--auth-addr="+grpcAddrs("auth"), "--analytics-addr="+grpcAddrs("analytics"))
		default:
			args[name] = serve(name)
		}
		if first := service[name]; first != name {
			// A replica shares the first process's keys (a Secret mounted in every pod, in
			// Kubernetes): the audit checkpoint key ring, and patient's data and search keys and
			// erasure journal.
			dir := filepath.Join(c.Dir, first)
			args[name] = append(args[name], "--audit-key-dir="+dir)
			if first == "patient" {
				args[name] = append(args[name], "--patient-data-key-file="+filepath.Join(dir, "patient-data.key"),
					"--patient-search-key-file="+filepath.Join(dir, "patient-search.key"),
					"--patient-erasure-journal="+filepath.Join(dir, "patient-erasures.jsonl"))
			}
		}
	}
	logs := o.Logs
	if logs == nil {
		logs = io.Discard
	}
	if !o.Plain {
		// Each process its own certificate, the CA, and Kafka over TLS too (the broker serves
		// it with its certificate; services present theirs and still log in with SASL).
		dir := Certs(t)
		for _, name := range names {
			args[name] = append(args[name], "--tls-cert="+filepath.Join(dir, service[name]+".pem"), "--tls-key="+filepath.Join(dir, service[name]+"-key.pem"),
				"--tls-ca="+filepath.Join(dir, "ca.pem"), "--kafka-tls")
		}
	}
	if o.NoRateLimits {
		for _, name := range names[1:] {
			args[name] = append(args[name], "--rate-limit=0")
		}
		args["gateway"] = append(args["gateway"], "--gateway-client-rate=0")
	}
	for _, name := range names {
		p := &Proc{Name: name, Args: append(args[name], o.Extra[service[name]]...), Env: o.Env, Admin: c.ports[name+"/admin"], Scheme: c.Scheme, logs: logs}
		p.Addr = p.Admin
		if name == "broker" {
			p.Addr = c.ports["broker/kafka"]
		}
		c.procs[name] = p
		if err := p.Start(c.Bin); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Kill() })
		if err := p.WaitReady(60 * time.Second); err != nil {
			t.Fatal(err)
		}
		if name == "broker" {
			c.kafka = authenticate(t, c.ports["broker/kafka"], filepath.Join(c.Dir, "kafka-credentials"), !o.Plain)
		}
	}
	return c
}

// authenticate returns the client configuration of the broker at addr for its admin
// principal, whose password the broker wrote into the credentials file before listening:
// brokertest's, over TLS trusting the clusters' CA when secure. It also makes brokertest's
// own helpers log in as the admin, which serves them against a plain cluster.
func authenticate(t testing.TB, addr, credentials string, secure bool) *sarama.Config {
	creds, err := broker.ReadCredentials(credentials)
	if err != nil {
		t.Fatal(err)
	}
	pw := creds["admin"]
	if pw == "" {
		t.Fatalf("%s has no admin principal", credentials)
	}
	brokertest.Authenticate(addr, "admin", pw)
	cfg := brokertest.ConfigFor(addr)
	if secure {
		tc, err := TLSConfig()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Net.TLS.Enable, cfg.Net.TLS.Config = true, tc
	}
	return cfg
}

// KafkaConfig is a client configuration for the cluster's broker, as its admin principal
// (over TLS unless the cluster is plain): for a test's own sarama clients.
func (c *Cluster) KafkaConfig() *sarama.Config { return c.kafka }

// Records reads what topic holds up to its high-water marks at the call, every partition
// from its oldest record, as the broker's admin (brokertest's Count and Reader, which speak
// plain text only, over the cluster's TLS); it fails the test if they do not all arrive
// within the given time.
func (c *Cluster) Records(t testing.TB, topic string, within time.Duration) []*sarama.ConsumerMessage {
	t.Helper()
	client, err := sarama.NewClient([]string{c.ports["broker/kafka"]}, c.kafka)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatalf("kafka consumer: %v", err)
	}
	defer consumer.Close()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		start, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("oldest offset of %s/%d: %v", topic, p, err)
		}
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("newest offset of %s/%d: %v", topic, p, err)
		}
		if start >= end {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, start)
		if err != nil {
			t.Fatalf("consume %s/%d: %v", topic, p, err)
		}
		for next := start; next < end; {
			select {
			case m, ok := <-pc.Messages():
				if !ok {
					t.Fatalf("%s/%d: the consumer stopped at offset %d of %d", topic, p, next, end)
				}
				out = append(out, m)
				next = m.Offset + 1
			case <-deadline.C:
				pc.AsyncClose()
				t.Fatalf("%s/%d: read up to offset %d of %d within %s", topic, p, next, end, within)
			}
		}
		pc.AsyncClose()
	}
	return out
}

// EnvDuration reads a positive Go duration from the environment variable name, def when it
// is unset: how the long suites take their outage and run lengths from make.
func EnvDuration(t testing.TB, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive Go duration", name, v)
	}
	return d
}

// Proc returns the process called name.
func (c *Cluster) Proc(name string) *Proc { return c.procs[name] }

// Addr returns a bound address, e.g. "gateway/http" or "patient/admin".
func (c *Cluster) Addr(key string) string { return c.ports[key] }

// URL is the base URL of an HTTP listener, e.g. "gateway/admin" → https://127.0.0.1:port.
func (c *Cluster) URL(key string) string { return c.Scheme + "://" + c.ports[key] }

// Gateway is the base URL of the gateway's public API.
func (c *Cluster) Gateway() string { return c.URL("gateway/http") }

// Start starts the process with its arguments. Its standard error goes to the cluster's log
// writer, one prefixed line at a time.
func (p *Proc) Start(bin string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(bin, p.Args...)
	cmd.Env = append(append(cleanEnv(), "PMS_BOOTSTRAP_ADMIN_PASSWORD="+AdminPassword), p.Env...)
	cmd.Stdout = io.Discard
	cmd.Stderr = &prefixWriter{prefix: p.Name + ": ", w: p.logs}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd, p.done, p.err = cmd, make(chan struct{}), nil
	go func(done chan struct{}) {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}(p.done)
	return nil
}

// cleanEnv is the test's environment without PMS_* variables, so that nothing set around the
// test changes what the processes do.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PMS_") {
			env = append(env, kv)
		}
	}
	return env
}

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Pid is the process id of the current run.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// WaitReady polls until the process answers: the admin port's /readyz says 200, or the
// broker accepts a connection. It fails early when the process exits.
func (p *Proc) WaitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: 2 * time.Second, Transport: HTTPTransport()}
	defer client.CloseIdleConnections()
	for {
		if !p.Running() {
			return fmt.Errorf("%s exited while starting: %v", p.Name, p.exitErr())
		}
		if p.Admin == "" {
			if conn, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
				conn.Close()
				return nil
			}
		} else if resp, err := client.Get(p.Scheme + "://" + p.Admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s", p.Name, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *Proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// wait waits for the current run to end and returns its exit code (-1 when killed by a
// signal), or an error when it outlives within.
func (p *Proc) wait(within time.Duration) (int, error) {
	p.mu.Lock()
	done, cmd := p.done, p.cmd
	p.mu.Unlock()
	if done == nil {
		return 0, errors.New(p.Name + " never started")
	}
	select {
	case <-done:
	case <-time.After(within):
		return 0, fmt.Errorf("%s still running %s after the signal", p.Name, within)
	}
	return cmd.ProcessState.ExitCode(), nil
}

// Term sends SIGTERM and waits for the exit; it returns the exit code.
func (p *Proc) Term(within time.Duration) (int, error) {
	if !p.Running() {
		return p.wait(0)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	return p.wait(within)
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *Proc) Kill() {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Kill()
	_, _ = p.wait(30 * time.Second)
}

// Restart starts the process again with the same arguments (ports, folder, database) and
// waits until it is ready.
func (p *Proc) Restart(bin string, within time.Duration) error {
	if p.Running() {
		return errors.New(p.Name + " is still running")
	}
	if err := p.Start(bin); err != nil {
		return err
	}
	return p.WaitReady(within)
}

// RSS is the process's resident set size in bytes (Linux /proc), 0 when unknown.
func (p *Proc) RSS() int64 { return p.Memory().RSS }

// Memory is a process's resident memory in bytes (Linux /proc/PID/status): RSS is Anon (the
// heap, stacks: what the process holds) plus File (pages of its executable and other files it
// has touched: shared, clean and reclaimable, growing as more of a 50 MB binary's code runs)
// plus Shmem.
type Memory struct{ RSS, Anon, File int64 }

// Memory reads the process's resident memory, zero when unknown.
func (p *Proc) Memory() Memory {
	var m Memory
	pid := p.Pid()
	if pid == 0 {
		return m
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = kb * 1024
		case "RssAnon:":
			m.Anon = kb * 1024
		case "RssFile:":
			m.File = kb * 1024
		}
	}
	return m
}

// Login signs in through the gateway and returns an access token.
func (c *Cluster) Login(ctx context.Context, email, password string) (string, error) {
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Gateway()+"/auth/login", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || out.Token == "" {
		return "", fmt.Errorf("login %s: %d %s", email, resp.StatusCode, b)
	}
	return out.Token, nil
}

// prefixWriter writes whole lines, each with a prefix, to w.
type prefixWriter struct {
	prefix string
	w      io.Writer
	mu     sync.Mutex
	buf    []byte
}

func (pw *prefixWriter) Write(b []byte) (int, error) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.buf = append(pw.buf, b...)
	for {
		i := bytes.IndexByte(pw.buf, '\n')
		if i < 0 {
			break
		}
		_, _ = pw.w.Write(append([]byte(pw.prefix), pw.buf[:i+1]...))
		pw.buf = pw.buf[i+1:]
	}
	return len(b), nil
}

// Tail keeps the last lines written to it, for a failing test to print.
type Tail struct {
	mu    sync.Mutex
	lines []string
	max   int
}

// NewTail keeps at most max lines.
func NewTail(max int) *Tail { return &Tail{max: max} }

func (t *Tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, strings.TrimRight(string(b), "\n"))
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
	return len(b), nil
}

// String is the kept lines.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// Client is an HTTP client for the gateway with a per-request deadline, so that a hang shows
// as an error instead of a stuck suite. It trusts the clusters' CA.
var Client = &http.Client{Timeout: 15 * time.Second, Transport: func() *http.Transport {
	t := HTTPTransport()
	t.MaxIdleConnsPerHost = 256
	return t
}()}

// Do sends one JSON request to the gateway and returns the status and body. A transport error
// (refused, reset, timeout) is returned as err with status 0.
func (c *Cluster) Do(ctx context.Context, token, method, path string, body any, headers ...string) (int, []byte, error) {
	return DoURL(ctx, token, method, c.Gateway()+path, body, headers...)
}

// DoURL is Do against any URL (a service's own port).
func DoURL(ctx context.Context, token, method, url string, body any, headers ...string) (int, []byte, error) {
	return DoWith(Client, ctx, token, method, url, body, headers...)
}

// FreshConns is a client that opens a new connection for every request. The SIGTERM tests use
// it: with keep-alive, a request written onto an idle connection the server is closing at
// that moment is reset before the server ever read it (the HTTP keep-alive race), which says
// nothing about requests in flight.
var FreshConns = &http.Client{Timeout: 15 * time.Second, Transport: func() *http.Transport {
	t := HTTPTransport()
	t.DisableKeepAlives = true
	return t
}()}

// DoWith is DoURL with a given client.
func DoWith(client *http.Client, ctx context.Context, token, method, url string, body any, headers ...string) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
