// Command pms runs the PMS platform: `pms all` runs every service in one process on embedded
// defaults; `pms auth`, `pms billing`, `pms patient`, `pms analytics` run one service each; `pms broker` the
// embedded Kafka-protocol broker; `pms migrate` applies migrations; `pms user create` adds a
// user. Every flag has
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
	"strings"
	"syscall"
	"time"
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
	"health":  {"pms health --addr host:port: exit 0 when the admin port's /readyz answers 200 (container health checks)", runHealth},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
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

// envName turns a flag name into its environment twin: http-addr → PMS_HTTP_ADDR.
func envName(flagName string) string {
	return "PMS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flags is a FlagSet whose every flag has environment twins (PMS_<NAME> unless named): a
// flag not given on the command line takes the value of its first twin that is set, parsed
// and checked like the flag itself. Values are typed (the standard flag types, and lists), so
// a build function never parses a string.
type flags struct {
	*flag.FlagSet
	stderr io.Writer
	// envs maps each flag to its environment twins, in order of precedence.
	envs map[string][]string
}

func newFlags(name string, stderr io.Writer) *flags {
	fs := flag.NewFlagSet("pms "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &flags{FlagSet: fs, stderr: stderr, envs: map[string][]string{}}
}

// twin records name's environment twins (PMS_<NAME> when none are given) and returns the
// usage text naming them. A back-quote in help would make the flag package print the quoted
// word as the value's name (`-kafka-brokers pms all`), so it is refused at wiring.
func (f *flags) twin(name, help string, envs []string) string {
	if strings.Contains(help, "`") {
		panic("pms: the usage of --" + name + " has a back-quote")
	}
	if len(envs) == 0 {
		envs = []string{envName(name)}
	}
	f.envs[name] = envs
	return help + " (env " + strings.Join(envs, ", ") + ")"
}

// String defines a string flag.
func (f *flags) String(p *string, name, def, help string, envs ...string) {
	f.StringVar(p, name, def, f.twin(name, help, envs))
}

// Int defines an integer flag.
func (f *flags) Int(p *int, name string, def int, help string, envs ...string) {
	f.IntVar(p, name, def, f.twin(name, help, envs))
}

// Float defines a number flag.
func (f *flags) Float(p *float64, name string, def float64, help string, envs ...string) {
	f.Float64Var(p, name, def, f.twin(name, help, envs))
}

// Duration defines a duration flag (300ms, 20s, 1h).
func (f *flags) Duration(p *time.Duration, name string, def time.Duration, help string, envs ...string) {
	f.DurationVar(p, name, def, f.twin(name, help, envs))
}

// Bool defines a boolean flag.
func (f *flags) Bool(p *bool, name string, def bool, help string, envs ...string) {
	f.BoolVar(p, name, def, f.twin(name, help, envs))
}

// List defines a comma-separated list flag; empty items are dropped.
func (f *flags) List(p *[]string, name, def, help string, envs ...string) {
	*p = splitList(def)
	f.Var((*listValue)(p), name, f.twin(name, help, envs))
}

// listValue is a comma-separated list as a flag.Value.
type listValue []string

func (l *listValue) String() string { return strings.Join(*l, ",") }
func (l *listValue) Set(s string) error {
	*l = splitList(s)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parse parses args, then gives every flag not on the command line the value of its first
// set environment twin; it refuses positional leftovers.
func (f *flags) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		// The flag package says "flag -name"; every other message here says "--name".
		return errors.New(strings.Replace(err.Error(), "for flag -", "for --", 1))
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", f.Args())
	}
	given := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	var err error
	f.VisitAll(func(fl *flag.Flag) {
		if given[fl.Name] {
			return
		}
		for _, env := range f.envs[fl.Name] {
			v, ok, ferr := lookupEnv(env)
			if ferr != nil {
				err = errors.Join(err, ferr)
				return
			}
			if ok {
				// An empty twin of a number, duration or bool (PMS_RATE_LIMIT= in a compose
				// file) means "unset"; an empty string or list is a value.
				if g, ok := fl.Value.(flag.Getter); ok && v == "" {
					if _, isString := g.Get().(string); !isString {
						return
					}
				}
				if serr := fl.Value.Set(v); serr != nil {
					err = errors.Join(err, fmt.Errorf("%s=%q (--%s): %w", env, v, fl.Name, serr))
				}
				return
			}
		}
	})
	return err
}

// lookupEnv reads the environment variable name or, when it is unset and name_FILE is set,
// the file name_FILE names (the Docker-secrets convention: a secret in a file, never in the
// environment), without its trailing newline.
func lookupEnv(name string) (string, bool, error) {
	if v, ok := os.LookupEnv(name); ok {
		return v, true, nil
	}
	path, ok := os.LookupEnv(name + "_FILE")
	if !ok {
		return "", false, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("%s_FILE: %w", name, err)
	}
	return strings.TrimRight(string(b), "\r\n"), true, nil
}
