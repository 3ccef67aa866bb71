// Command pms runs the PMS platform: `pms all` runs every service in one process on embedded
// defaults; `pms auth`, `pms billing`, `pms patient`, `pms analytics` run one service each; `pms broker` the
// embedded Kafka-protocol broker; `pms migrate` applies migrations; `pms user create` adds a
// user; `pms backup` and `pms restore` take and restore encrypted backups of the embedded
// databases (backup.go). Every flag has
// a PMS_* environment twin. This package only wires: no business logic lives here.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand of pms.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"all":     {"run every service in one process (embedded defaults)", runAll},
	"patient": {"run the patient service", runPatient},
	"billing": {"run the billing service", runBilling},
	"auth":    {"run the auth service (pms auth rotate-key: a new signing key)", runAuth},
	"user":    {"pms user create --email --role: add a user (password from PMS_USER_PASSWORD or stdin)", runUser},
	"migrate": {"apply every service's database migrations and exit", runMigrate},
	"gateway": {"run the API gateway (HTTP 4004, admin 4104)", runGateway},
	"broker":  {"run the embedded Kafka-protocol broker alone (development)", runBroker},
	"kafka":   {"pms kafka setup: create the principals, ACLs and topics of the platform on a Kafka cluster", runKafka},
	"audit":   {"pms audit verify [--service NAME] [--against-topic]: walk the audit chains (and compare them with the audit topic); pms audit rotate-key --service NAME", runAudit},
	"seed":    {"pms seed --patients N: add N synthetic patients straight through the patient store (benchmarks; no events, no audit)", runSeed},
	"health":  {"pms health --addr host:port: exit 0 when the admin port's /readyz answers 200 (container health checks)", runHealth},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	applyGCDefaults(os.Args[1:])
	if err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "pms:", err)
		os.Exit(1)
	}
}

// dispatch dispatches to a subcommand; tests call it directly.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return flag.ErrHelp
	}
	c, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: pms <command> [flags]   (pms <command> --help lists its flags)")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nEvery flag --some-flag can also be set as PMS_SOME_FLAG (per service: PMS_PATIENT_...), and every")
	fmt.Fprintln(w, "PMS_* variable as PMS_..._FILE naming a file that holds the value (secrets).")
}
