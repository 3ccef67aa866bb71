package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"
)

// This file is typed configuration, in one place: every flag of every command is defined
// through flags, which gives it its PMS_* environment twins, parses it into its type (string,
// int, float, duration, bool, list, CIDR list) and runs its range checks, so a build function
// gets values it can use as they are and never parses or checks a string.

// envName turns a flag name into its environment twin: http-addr → PMS_HTTP_ADDR.
func envName(flagName string) string {
	return "PMS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flags is a FlagSet whose every flag has environment twins (PMS_<NAME> unless named): a
// flag not given on the command line takes the value of its first twin that is set, parsed
// and checked like the flag itself.
type flags struct {
	*flag.FlagSet
	stderr io.Writer
	// envs maps each flag to its environment twins, in order of precedence.
	envs map[string][]string
	// checks are the flags' range checks, run once every value is known.
	checks []func() error
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

// Int defines an integer flag; its checks chain (f.Int(...).atLeast(1)).
func (f *flags) Int(p *int, name string, def int, help string, envs ...string) checked[int] {
	f.IntVar(p, name, def, f.twin(name, help, envs))
	return checked[int]{f, name, p}
}

// Float defines a number flag; its checks chain.
func (f *flags) Float(p *float64, name string, def float64, help string, envs ...string) checked[float64] {
	f.Float64Var(p, name, def, f.twin(name, help, envs))
	return checked[float64]{f, name, p}
}

// Duration defines a duration flag (300ms, 20s, 1h); its checks chain.
func (f *flags) Duration(p *time.Duration, name string, def time.Duration, help string, envs ...string) checked[time.Duration] {
	f.DurationVar(p, name, def, f.twin(name, help, envs))
	return checked[time.Duration]{f, name, p}
}

// Bool defines a boolean flag.
func (f *flags) Bool(p *bool, name string, def bool, help string, envs ...string) {
	f.BoolVar(p, name, def, f.twin(name, help, envs))
}

// List defines a comma-separated list flag; empty items are dropped.
func (f *flags) List(p *[]string, name, def, help string, envs ...string) {
	f.list(newList(p, func(s string) (string, error) { return s, nil }), name, def, help, envs)
}

// Prefixes defines a comma-separated list of CIDRs (127.0.0.0/8,::1/128).
func (f *flags) Prefixes(p *[]netip.Prefix, name, def, help string, envs ...string) {
	f.list(newList(p, netip.ParsePrefix), name, def, help, envs)
}

// list defines the list flag v with the default def, which must parse.
func (f *flags) list(v flag.Value, name, def, help string, envs []string) {
	if err := v.Set(def); err != nil {
		panic("pms: the default of --" + name + ": " + err.Error())
	}
	f.Var(v, name, f.twin(name, help, envs))
}

// listValue is a comma-separated list of T as a flag.Value.
type listValue[T any] struct {
	p     *[]T
	parse func(string) (T, error)
}

func newList[T any](p *[]T, parse func(string) (T, error)) *listValue[T] {
	return &listValue[T]{p: p, parse: parse}
}

// String joins the items; the flag package also calls it on a zero listValue (p nil) to
// learn whether a default is worth printing.
func (l *listValue[T]) String() string {
	if l.p == nil {
		return ""
	}
	items := make([]string, len(*l.p))
	for i, v := range *l.p {
		items[i] = fmt.Sprint(v)
	}
	return strings.Join(items, ",")
}

// Set replaces the list with the items of s, refusing the whole list if one does not parse.
func (l *listValue[T]) Set(s string) error {
	var out []T
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		v, err := l.parse(item)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	*l.p = out
	return nil
}

// checked is a numeric flag whose range checks run after parsing (command line and
// environment alike), each refusal naming the flag: `--login-window: want a positive
// duration, got 0s`.
type checked[T int | float64 | time.Duration] struct {
	f    *flags
	name string
	p    *T
}

// check adds a check: ok(value) or the error "--name: want <want>, got <value>".
func (c checked[T]) check(ok func(T) bool, want string) checked[T] {
	c.f.checks = append(c.f.checks, func() error {
		if !ok(*c.p) {
			return fmt.Errorf("--%s: want %s, got %v", c.name, want, *c.p)
		}
		return nil
	})
	return c
}

// atLeast refuses a value below lo: "want an integer ≥ 1".
func (c checked[T]) atLeast(lo T) checked[T] {
	return c.check(func(v T) bool { return v >= lo }, fmt.Sprintf("%s ≥ %v", article(noun[T]()), lo))
}

// within refuses a value outside lo..hi: "want 1..1000".
func (c checked[T]) within(lo, hi T) checked[T] {
	return c.check(func(v T) bool { return v >= lo && v <= hi }, fmt.Sprintf("%v..%v", lo, hi))
}

// positive refuses a value ≤ 0: "want a positive duration".
func (c checked[T]) positive() checked[T] {
	return c.check(func(v T) bool { return v > 0 }, "a positive "+noun[T]())
}

// noun names T in a check's message.
func noun[T int | float64 | time.Duration]() string {
	switch any(*new(T)).(type) {
	case int:
		return "integer"
	case time.Duration:
		return "duration"
	default:
		return "number"
	}
}

// article puts "a" or "an" before word.
func article(word string) string {
	if strings.ContainsRune("aeiou", rune(word[0])) {
		return "an " + word
	}
	return "a " + word
}

// parse parses args, then gives every flag not on the command line the value of its first
// set environment twin, then runs the flags' checks; it refuses positional leftovers.
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
	if err != nil {
		return err
	}
	for _, check := range f.checks {
		err = errors.Join(err, check())
	}
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
