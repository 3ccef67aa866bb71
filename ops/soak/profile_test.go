package soak_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/pms/pms/ops/cluster"
)

// profiled are the processes whose heap profiles the soak writes at minute 2 and at the end
// (issue 20: the services that hold the most state per patient; billing, whose RSS grew past
// the 10% rule in the eighteenth session's runs; the gateway, whose RSS did in the
// twenty-first session's, +10.0%, with the machine 91% busy at the end), and whose CPU
// profiles it takes at minute 2 and before the end: with auth, whose work does not change
// with the data, so that its profile shows what a machine-wide rise in CPU a request costs
// (the twenty-ninth session's run C).
var profiled = []string{"patient", "billing", "analytics", "gateway", "auth"}

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
// with --pprof) as <dir>/heap-<name>-<label>.pb.gz, next to the CSV.
func heapProfiles(t *testing.T, c *cluster.Cluster, dir, label string) {
	t.Helper()
	saveProfiles(t, c, dir, "heap", label, "heap?gc=1", 0)
}

// cpuProfiles saves a CPU profile of every profiled process, all sampled over the same
// length (whole seconds), as <dir>/cpu-<name>-<label>.pb.gz.
func cpuProfiles(t *testing.T, c *cluster.Cluster, dir, label string, length time.Duration) {
	t.Helper()
	saveProfiles(t, c, dir, "cpu", label, "profile?seconds="+strconv.Itoa(max(1, int(length/time.Second))), length)
}

// saveProfiles fetches /debug/pprof/<query> from every profiled process at once and writes
// each as <dir>/<kind>-<name>-<label>.pb.gz; length is how long the profile samples before
// it answers. A failure is logged, not fatal: the profiles are evidence for the report, not
// a criterion.
func saveProfiles(t *testing.T, c *cluster.Cluster, dir, kind, label, query string, length time.Duration) {
	t.Helper()
	client := &http.Client{Transport: cluster.HTTPTransport(), Timeout: time.Minute + length}
	var wg sync.WaitGroup
	for _, name := range profiled {
		p := c.Proc(name)
		wg.Go(func() {
			path := filepath.Join(dir, fmt.Sprintf("%s-%s-%s.pb.gz", kind, name, label))
			if err := fetchTo(client, p.Scheme+"://"+p.Admin+"/debug/pprof/"+query, path); err != nil {
				t.Logf("%s profile of %s: %v", kind, name, err)
				return
			}
			abs, _ := filepath.Abs(path)
			t.Logf("%s profile of %s (%s): %s", kind, name, label, abs)
		})
	}
	wg.Wait()
}

// fetchTo writes the body of a GET of url, answered 200, to path.
func fetchTo(client *http.Client, url, path string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
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
