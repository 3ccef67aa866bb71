package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runHealth is `pms health --addr host:port`: GET http://addr/readyz and exit 0 on 200. It
// exists because the container image has no curl: Docker's HEALTHCHECK and compose's
// healthcheck run the binary itself against the service's admin port.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("health", stderr)
	var addr string
	var d time.Duration
	f.String(&addr, "addr", "127.0.0.1:4104", "admin address (host:port) whose /readyz is checked", "PMS_HEALTH_ADDR")
	f.Duration(&d, "timeout", 3*time.Second, "how long the check may take", "PMS_HEALTH_TIMEOUT")
	if err := f.parse(args); err != nil {
		return err
	}
	if d <= 0 {
		return fmt.Errorf("--timeout: want a positive duration, got %s", d)
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
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
