package main

import (
	"io"
	"net"
	"sync"
	"time"
)

// Lingering close of the public HTTP listeners. When a server closes a TCP connection whose
// peer has sent bytes it never read (the rest of a body it refused, a request net/http
// could not parse, bytes after a lying Content-Length), the kernel answers with a reset,
// and a reset that reaches the client before it has read the answer destroys the answer
// in the client's buffers: the client sees "connection reset" instead of the 4xx it was
// sent. So a connection is closed in two steps, as nginx and Apache do: the write side
// first (the client gets the answer and then end of stream), then the server reads and
// discards what the client still sends, until the client closes its side, lingerBytes
// have been read, or lingerTimeout has passed, and only then closes the socket.
const (
	lingerTimeout = 5 * time.Second
	lingerBytes   = 1 << 20
)

// lingerListener hands out connections whose Close lingers.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok && err == nil {
		return &lingerConn{TCPConn: tc}, nil
	}
	return c, err
}

// lingerConn is a TCP connection whose Close shuts the write side at once and the socket
// after the peer has finished sending (bounded by lingerBytes and lingerTimeout). Close
// returns at once; the draining runs on its own goroutine.
type lingerConn struct {
	*net.TCPConn
	once sync.Once
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		if err := c.TCPConn.CloseWrite(); err != nil {
			_ = c.TCPConn.Close()
			return
		}
		go func() {
			_ = c.TCPConn.SetReadDeadline(time.Now().Add(lingerTimeout))
			_, _ = io.CopyN(io.Discard, c.TCPConn, lingerBytes)
			_ = c.TCPConn.Close()
		}()
	})
	return nil
}
