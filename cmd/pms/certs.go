package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/pms/pms/pkg/platform/tlsconf"
)

func init() {
	commands["certs"] = command{"pms certs --dir <folder>: a local CA and a certificate per service (development, compose)", runCerts}
}

// certNames are the certificates `pms certs` makes by default: one per service, and "all"
// for `pms all` (one process, one certificate).
var certNames = []string{"all", "gateway", "auth", "patient", "billing", "analytics"}

// runCerts is `pms certs`: a local CA (kept when it exists, so new certificates join the same
// trust) and a certificate per name, keys 0600. Not for production, where certificates come
// from the organisation's CA.
func runCerts(_ context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("certs", stderr)
	var dir string
	var names, hosts []string
	f.String(&dir, "dir", "./data/certs", "folder of ca.pem, ca-key.pem and <name>.pem, <name>-key.pem (made 0700)", "PMS_CERTS_DIR")
	f.List(&names, "names", "", "comma-separated certificate names (default: all and every service)", "PMS_CERTS_NAMES")
	f.List(&hosts, "hosts", "", "comma-separated extra DNS names every certificate holds", "PMS_CERTS_HOSTS")
	if err := f.parse(args); err != nil {
		return err
	}
	if len(names) == 0 {
		names = certNames
	}
	if err := tlsconf.Generate(dir, names, hosts, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "CA %s; certificates %v in %s (valid %d days)\n", filepath.Join(dir, "ca.pem"), names, dir,
		int(tlsconf.LeafLifetime.Hours()/24))
	return nil
}
