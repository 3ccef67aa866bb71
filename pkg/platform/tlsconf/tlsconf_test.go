package tlsconf

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestMutualHandshakeAndReload: a server and a client built from Generate's files complete
// a mutual handshake of TLS 1.2 or later, in which each sees the other's service identity;
// a half configuration is refused; a key pair that stops loading (a half-written rotation)
// leaves the last good one served.
func TestMutualHandshakeAndReload(t *testing.T) {
	dir := t.TempDir()
	if err := Generate(dir, []string{"patient", "gateway"}, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	files := func(name string) Files {
		return Files{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem"), CA: filepath.Join(dir, "ca.pem")}
	}
	srvCfg, err := Server(files("patient"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer := make(chan string, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if err := tc.Handshake(); err == nil && len(tc.ConnectionState().PeerCertificates) > 0 {
				peer <- tc.ConnectionState().PeerCertificates[0].URIs[0].String()
			}
			_ = c.Close()
		}
	}()
	cliCfg, err := Client(files("gateway"))
	if err != nil {
		t.Fatal(err)
	}
	dial := func() tls.ConnectionState {
		c, err := tls.Dial("tcp", l.Addr().String(), cliCfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState()
	}
	st := dial()
	if st.Version < tls.VersionTLS12 || st.PeerCertificates[0].URIs[0].String() != "spiffe://pms/patient" {
		t.Fatalf("version %x, server %v", st.Version, st.PeerCertificates[0].URIs)
	}
	if got := <-peer; got != "spiffe://pms/gateway" {
		t.Fatalf("the server saw client %q", got)
	}
	if _, err := Server(Files{Cert: files("patient").Cert}); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
	// A broken rotation: the served pair stays the last good one.
	serial := st.PeerCertificates[0].SerialNumber
	if err := os.WriteFile(files("patient").Key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(2 * time.Second)
	_ = os.Chtimes(files("patient").Key, future, future)
	reloadEvery = 0 // look at the files on every handshake
	defer func() { reloadEvery = time.Second }()
	if got := dial().PeerCertificates[0].SerialNumber; got.Cmp(serial) != 0 {
		t.Fatal("a broken key pair replaced the served certificate")
	}
}
