package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// invocation is one run of the command line: the settings and output its
// command shares.
type invocation struct {
	settings       Settings
	lockTimeout    time.Duration
	stdout, stderr io.Writer
}

func (p Program) invocation(environ map[string]string, stdout, stderr io.Writer) invocation {
	return invocation{settings: p.Settings(environ), lockTimeout: p.LockTimeout, stdout: stdout, stderr: stderr}
}

// command is one subcommand being run.
type command struct {
	invocation
	cmd string // "sockudo apps create", for messages
	// argName names the positional argument in parse's messages; "" means
	// "app id".
	argName string
}

func (in invocation) command(name string) *command { return &command{invocation: in, cmd: name} }

// runGroup runs the command of a group ("sockudo apps") that args[0]
// names, or prints the group's usage.
func runGroup(group, usage string, cmds map[string]func(*command, []string) int, args []string, in invocation) int {
	if len(args) == 0 {
		fmt.Fprint(in.stderr, usage)
		return 2
	}
	name, args := args[0], args[1:]
	if run, ok := cmds[name]; ok {
		return run(in.command(group+" "+name), args)
	}
	if isHelp(name) {
		fmt.Fprint(in.stdout, usage)
		return 0
	}
	fmt.Fprintf(in.stderr, "%s: unknown command %q\n\n%s", group, name, usage)
	return 2
}

// The exit codes of every command, documented in the usage text and the
// README ("Exit codes"). Scripts may rely on them.
const (
	// exitOK: the command did what was asked (doctor: no errors, warnings
	// allowed).
	exitOK = 0
	// exitFailure: it failed (the server or the database refused, a
	// conflict, a broken audit chain, a credential that does not work,
	// doctor found an error).
	exitFailure = 1
	// exitUsage: the command line or the input it names is invalid
	// (unknown command or flag, a malformed value, a body the server
	// refused as invalid).
	exitUsage = 2
	// exitNotFound: the app, device or credential version named does not
	// exist.
	exitNotFound = 3
)

// failf reports a failure and returns exitFailure.
func (c *command) failf(format string, args ...any) int {
	fmt.Fprintf(c.stderr, c.cmd+": "+format+"\n", args...)
	return exitFailure
}

// usagef reports a usage error and returns exitUsage.
func (c *command) usagef(format string, args ...any) int {
	fmt.Fprintf(c.stderr, c.cmd+": "+format+"\nRun '%s -h' for usage.\n", append(args, c.cmd)...)
	return exitUsage
}

// invalidf reports input the store refused as invalid and returns
// exitUsage (without the usage hint: the flags parsed).
func (c *command) invalidf(format string, args ...any) int {
	fmt.Fprintf(c.stderr, c.cmd+": "+format+"\n", args...)
	return exitUsage
}

// notFoundf reports that what the command names does not exist and
// returns exitNotFound.
func (c *command) notFoundf(format string, args ...any) int {
	fmt.Fprintf(c.stderr, c.cmd+": "+format+"\n", args...)
	return exitNotFound
}

// fail reports err with the exit code its kind calls for: exitNotFound for
// storage.ErrNotFound, exitUsage for storage.ErrInvalid (the admin socket
// returns both, wrapped), else exitFailure.
func (c *command) fail(err error) int {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return c.notFoundf("%v", err)
	case errors.Is(err, storage.ErrInvalid):
		return c.invalidf("%v", err)
	}
	return c.failf("%v", err)
}

// jsonFlag adds --json. about says what it prints; for commands whose only
// output is JSON the flag is accepted and changes nothing, so every
// command takes it.
func jsonFlag(fs *flag.FlagSet, about string) *bool {
	return fs.Bool("json", false, about)
}

// flagSet returns a FlagSet for the subcommand whose usage line is synopsis.
func (c *command) flagSet(synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(c.cmd, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s %s\n\n%s\n", c.cmd, synopsis, about)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(fs.Output(), "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses args, accepting flags before and after positional arguments,
// and checks that exactly wantArgs positional arguments remain. done is true
// when the caller should return code (help shown or a usage error).
func (c *command) parse(fs *flag.FlagSet, args []string, wantArgs int) (pos []string, code int, done bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, true
			}
			return nil, 2, true // flag has printed the error and usage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		// After "--" everything is positional.
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != wantArgs {
		// "--enabled false" leaves "false" behind: the flag package takes a
		// boolean's value only after '='.
		for _, p := range pos {
			if p == "true" || p == "false" {
				return nil, c.usagef("unexpected argument %q (give a boolean flag its value with '=', "+
					"as in --enabled=false)", p), true
			}
		}
		if wantArgs == 0 {
			return nil, c.usagef("unexpected argument %q", pos[0]), true
		}
		noun := c.argName
		if noun == "" {
			noun = "app id"
		}
		if len(pos) == 0 {
			return nil, c.usagef("missing %s", noun), true
		}
		return nil, c.usagef("want one %s, got %q", noun, pos), true
	}
	return pos, 0, false
}

// printJSON prints v as indented JSON on stdout.
func (c *command) printJSON(v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return c.failf("%v", err)
	}
	if _, err := fmt.Fprintf(c.stdout, "%s\n", b); err != nil {
		return c.failf("%v", err)
	}
	return 0
}

// printTable prints a table on stdout: the tab-separated header, then what
// rows writes, one tab-separated line per row, columns aligned.
func (c *command) printTable(header string, rows func(w io.Writer)) int {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	rows(tw)
	if err := tw.Flush(); err != nil {
		return c.failf("%v", err)
	}
	return 0
}

// failApp reports err of a command on app id: "no app with id" for
// storage.ErrNotFound, else the error.
func (c *command) failApp(id string, err error) int {
	if errors.Is(err, storage.ErrNotFound) {
		return c.notFoundf("no app with id %q", id)
	}
	return c.fail(err)
}
