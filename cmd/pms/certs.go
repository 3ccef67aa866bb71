package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	var names, hosts, owners []string
	f.String(&dir, "dir", "./data/certs", "folder of ca.pem, ca-key.pem and <name>.pem, <name>-key.pem (made 0700)", "PMS_CERTS_DIR")
	f.List(&names, "names", "", "comma-separated certificate names (default: all and every service)", "PMS_CERTS_NAMES")
	f.List(&hosts, "hosts", "", "comma-separated extra DNS names every certificate holds", "PMS_CERTS_HOSTS")
	f.List(&owners, "owner", "", "comma-separated name=uid:gid: hand that name's certificate and key to another user (run as root; compose gives Kafka's and PostgreSQL's to their users)", "PMS_CERTS_OWNER")
	if err := f.parse(args); err != nil {
		return err
	}
	if len(names) == 0 {
		names = certNames
	}
	chowns, err := parseOwners(owners, names)
	if err != nil {
		return err
	}
	if err := tlsconf.Generate(dir, names, hosts, time.Now()); err != nil {
		return err
	}
	for name, id := range chowns {
		for _, file := range []string{name + ".pem", name + "-key.pem"} {
			if err := os.Chown(filepath.Join(dir, file), id[0], id[1]); err != nil {
				return fmt.Errorf("--owner %s: %w", name, err)
			}
		}
	}
	fmt.Fprintf(stdout, "CA %s; certificates %v in %s (valid %d days)\n", filepath.Join(dir, "ca.pem"), names, dir,
		int(tlsconf.LeafLifetime.Hours()/24))
	return nil
}

// parseOwners reads --owner's name=uid:gid entries; each name must be one of names.
func parseOwners(owners, names []string) (map[string][2]int, error) {
	out := map[string][2]int{}
	for _, o := range owners {
		name, ids, ok := strings.Cut(o, "=")
		uid, gid, ok2 := strings.Cut(ids, ":")
		u, err1 := strconv.Atoi(uid)
		g, err2 := strconv.Atoi(gid)
		if !ok || !ok2 || err1 != nil || err2 != nil || u < 0 || g < 0 {
			return nil, fmt.Errorf("--owner %q: want name=uid:gid", o)
		}
		if !slices.Contains(names, name) {
			return nil, fmt.Errorf("--owner %q: %s is not among the certificates made", o, name)
		}
		out[name] = [2]int{u, g}
	}
	return out, nil
}
