package cluster_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pms/pms/ops/cluster"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestClusterStartsAndRestarts runs every service as its own process, creates a patient
// through the gateway, kills the patient service with SIGKILL, restarts it on the same
// ports and reads the patient back; SIGTERM then ends each process with exit code 0.
func TestClusterStartsAndRestarts(t *testing.T) {
	tail := cluster.NewTail(200)
	c := cluster.Start(t, cluster.Options{DatabaseURL: dbtest.PostgresDatabase(t), Logs: tail})
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", tail.String())
		}
	}()
	ctx := context.Background()
	token, err := c.Login(ctx, cluster.AdminEmail, cluster.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	code, b, err := c.Do(ctx, token, "POST", "/api/patients", map[string]string{"name": "Ada Cluster", "email": "ada@cluster.test", "address": "1 Main St", "dateOfBirth": "1990-01-01"})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("create: %d %s %v", code, b, err)
	}
	var p struct{ ID string }
	_ = json.Unmarshal(b, &p)
	pat := c.Proc("patient")
	pat.Kill()
	if err := pat.Restart(c.Bin, time.Minute); err != nil {
		t.Fatal(err)
	}
	code, b, err = c.Do(ctx, token, "GET", "/api/patients/"+p.ID, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("get after restart: %d %s %v", code, b, err)
	}
	if pat.RSS() <= 0 {
		t.Fatal("no RSS for the patient process")
	}
	for i := len(cluster.Order) - 1; i >= 0; i-- {
		name := cluster.Order[i]
		if code, err := c.Proc(name).Term(30 * time.Second); err != nil || code != 0 {
			t.Fatalf("%s: exit %d %v", name, code, err)
		}
	}
}
