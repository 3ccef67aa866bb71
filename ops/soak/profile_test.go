package soak_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/pms/pms/ops/cluster"
)

// profiled are the processes whose heap profiles the soak writes at minute 2 and at the end
// (issue 20: the services that hold the most state per patient; billing, whose RSS grew past
// the 10% rule in the eighteenth session's runs; the gateway, whose RSS did in the
// twenty-first session's, +10.0%, with the machine 91% busy at the end).
var profiled = []string{"patient", "billing", "analytics", "gateway"}

// seedBulk adds n synthetic patients with `pms seed` (bulk insert, then VACUUM ANALYZE, so
// the planner sees the real table: this machine's PostgreSQL runs without autovacuum) before
// the services start, so the soak runs against a realistically sized patient table.
func seedBulk(t *testing.T, dbURL string, n int) {
	t.Helper()
	if n <= 0 {
		return
	}
	start := time.Now()
	cmd := exec.Command(cluster.Binary(t), "seed", "--patients="+strconv.Itoa(n), "--database-url="+dbURL, "--data-dir="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pms seed --patients=%d: %v\n%s", n, err, out)
	}
	t.Logf("bulk-seeded %d patients in %s", n, time.Since(start).Round(time.Second))
}

// heapProfiles saves the heap profile of every profiled process (served on its admin port
// with --pprof) as <dir>/heap-<name>-<label>.pb.gz, next to the CSV. A failure is logged,
// not fatal: the profiles are evidence for the report, not a criterion.
func heapProfiles(t *testing.T, c *cluster.Cluster, dir, label string) {
	t.Helper()
	client := &http.Client{Transport: cluster.HTTPTransport(), Timeout: time.Minute}
	for _, name := range profiled {
		p := c.Proc(name)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		req, _ := http.NewRequestWithContext(ctx, "GET", p.Scheme+"://"+p.Admin+"/debug/pprof/heap?gc=1", nil)
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			t.Logf("heap profile of %s: %v", name, err)
			continue
		}
		path := filepath.Join(dir, fmt.Sprintf("heap-%s-%s.pb.gz", name, label))
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if err == nil {
			err = os.WriteFile(path, b, 0o644)
		}
		if err != nil {
			t.Logf("heap profile of %s: %v", name, err)
			continue
		}
		abs, _ := filepath.Abs(path)
		t.Logf("heap profile of %s (%s): %s", name, label, abs)
	}
}

// retained counts the records the broker holds (newest minus oldest offset of every
// partition of every topic), so that the broker's memory can be read as bytes per retained
// record.
func retained(c *cluster.Cluster) (int64, error) {
	client, err := sarama.NewClient([]string{c.Addr("broker/kafka")}, c.KafkaConfig())
	if err != nil {
		return 0, err
	}
	defer client.Close()
	topics, err := client.Topics()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, topic := range topics {
		parts, err := client.Partitions(topic)
		if err != nil {
			return 0, err
		}
		for _, p := range parts {
			oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
			if err != nil {
				return 0, err
			}
			newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return 0, err
			}
			n += newest - oldest
		}
	}
	return n, nil
}
