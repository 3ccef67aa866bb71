package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRefusalSurvivesUnreadBody: a request net/http refuses before any handler runs (a
// control character in a header value), followed by a body the server never reads, gets
// its whole 400 even when the client reads only after the server has closed the
// connection. Without the lingering close the unread body makes the kernel reset the
// connection, and the reset destroys the answer the client had not read yet (the
// TestHostileInput flake: "connection reset by peer" while reading the body).
func TestRefusalSurvivesUnreadBody(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{}, 1)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { t.Error("the handler ran") }),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				closed <- struct{}{}
			}
		},
	}
	go func() { _ = srv.Serve(lingerListener{l}) }()
	t.Cleanup(func() { _ = srv.Close() })

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a hang fails, not blocks
	body := strings.Repeat("x", 256<<10)
	req := "POST /patients HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x7fb\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	go func() { _, _ = io.WriteString(conn, req) }() // may block until the server drains it
	select {
	case <-closed: // the server has answered and closed the connection: only now read
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not close the connection")
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 400 || string(b) != "400 Bad Request" {
		t.Fatalf("answer %d %q, %v; want the whole 400", resp.StatusCode, b, err)
	}
}
