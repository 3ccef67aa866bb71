package migrations

import (
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/outbox"
)

// Gateway is the gateway's migrations: the platform sets it uses (issue 17). It keeps no
// records of its own, only its hash-chained audit log of the calls it refuses itself (a bad
// token, a role that may not call a route) and the outbox that publishes those entries on
// the audit topic like every service's.
func Gateway() db.Sets {
	return db.Sets{outbox.Migrations, audit.Migrations}
}
