package broker

import (
	"encoding/binary"
	"net"
	"sync"
)

// librdkafka (kcat, and most non-Java clients) turns SCRAM on only when the broker advertises
// SaslHandshake version 0, and then, seeing SaslAuthenticate, speaks version 1. kfake serves
// version 1 only and advertises 1..1, so kcat refuses to authenticate ("SASL Handshake not
// supported by broker"). saslCompat rewrites the advertised minimum to 0 in ApiVersions
// responses; a client that really sends a version-0 handshake is still refused by kfake
// (connection closed). It rewrites nothing else.

// saslCompatListener wraps every accepted connection in a saslCompatConn.
type saslCompatListener struct{ net.Listener }

func (l saslCompatListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &saslCompatConn{Conn: c, apiVersions: map[int32]int16{}}, nil
}

// saslCompatConn follows the requests read (size, key, version, correlation id) to know which
// responses answer an ApiVersions request, and patches those as they are written. kfake
// writes each response with a single Write.
type saslCompatConn struct {
	net.Conn
	// in is the request being read: its first 12 bytes, then how many bytes to skip.
	in   [12]byte
	have int
	skip int64

	mu          sync.Mutex
	apiVersions map[int32]int16 // correlation id → request version
}

const (
	keyApiVersions   = 18
	keySASLHandshake = 17
)

func (c *saslCompatConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.follow(p[:n])
	return n, err
}

// follow advances the request parser over b.
func (c *saslCompatConn) follow(b []byte) {
	for len(b) > 0 {
		if c.skip > 0 {
			k := min(int64(len(b)), c.skip)
			b, c.skip = b[k:], c.skip-k
			continue
		}
		k := copy(c.in[c.have:], b)
		b, c.have = b[k:], c.have+k
		if c.have < len(c.in) {
			continue
		}
		size := int64(binary.BigEndian.Uint32(c.in[0:4]))
		key, version := int16(binary.BigEndian.Uint16(c.in[4:6])), int16(binary.BigEndian.Uint16(c.in[6:8]))
		if key == keyApiVersions {
			c.mu.Lock()
			if len(c.apiVersions) < 64 {
				c.apiVersions[int32(binary.BigEndian.Uint32(c.in[8:12]))] = version
			}
			c.mu.Unlock()
		}
		c.have, c.skip = 0, max(size-8, 0)
	}
}

func (c *saslCompatConn) Write(p []byte) (int, error) {
	if len(p) >= 10 {
		corr := int32(binary.BigEndian.Uint32(p[4:8]))
		c.mu.Lock()
		version, ok := c.apiVersions[corr]
		delete(c.apiVersions, corr)
		c.mu.Unlock()
		if ok {
			patchSASLHandshakeMin(p[8:], version)
		}
	}
	return c.Conn.Write(p)
}

// patchSASLHandshakeMin sets SaslHandshake's advertised minimum version to 0 in an
// ApiVersions response body (after the correlation id) of the given request version. A body
// it cannot follow is left alone.
func patchSASLHandshakeMin(b []byte, version int16) {
	if len(b) < 2 || binary.BigEndian.Uint16(b) != 0 { // error code: a refusal lists nothing to patch
		return
	}
	b = b[2:]
	flexible := version >= 3
	var n int
	if flexible {
		v, k := binary.Uvarint(b)
		if k <= 0 || v == 0 {
			return
		}
		n, b = int(v-1), b[k:]
	} else {
		if len(b) < 4 {
			return
		}
		n, b = int(int32(binary.BigEndian.Uint32(b))), b[4:]
	}
	for i := 0; i < n; i++ {
		if len(b) < 6 {
			return
		}
		if binary.BigEndian.Uint16(b) == keySASLHandshake && binary.BigEndian.Uint16(b[2:4]) == 1 {
			binary.BigEndian.PutUint16(b[2:4], 0)
			return
		}
		b = b[6:]
		if flexible {
			if b = skipTags(b); b == nil {
				return
			}
		}
	}
}

// skipTags skips a tagged-fields section; nil when b is too short.
func skipTags(b []byte) []byte {
	count, k := binary.Uvarint(b)
	if k <= 0 {
		return nil
	}
	b = b[k:]
	for ; count > 0; count-- {
		if _, k = binary.Uvarint(b); k <= 0 {
			return nil
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < size {
			return nil
		}
		b = b[k+int(size):]
	}
	return b
}
