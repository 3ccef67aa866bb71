package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/pms/pms/pkg/platform/tlsconf"
)

// runHealth is `pms health --addr host:port`: GET http://addr/readyz and exit 0 on 200. It
// exists because the container image has no curl: Docker's HEALTHCHECK and compose's
// healthcheck run the binary itself against the service's admin port.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("health", stderr)
	var addr, ca string
	var d time.Duration
	f.String(&addr, "addr", "127.0.0.1:4104", "admin address (host:port) whose /readyz is checked", "PMS_HEALTH_ADDR")
	f.Duration(&d, "timeout", 3*time.Second, "how long the check may take", "PMS_HEALTH_TIMEOUT").positive()
	f.String(&ca, "tls-ca", "", "CA of the admin port's certificate: check over HTTPS (the service's --tls-ca)", "PMS_TLS_CA")
	if err := f.parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	scheme, client := "http", http.DefaultClient
	if ca != "" {
		cfg, err := tlsconf.Client(tlsconf.Files{CA: ca})
		if err != nil {
			return err
		}
		scheme, client = "https", &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s answered %d", addr, resp.StatusCode)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}
