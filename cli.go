package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sockudo/sockudo/apps"
	"github.com/sockudo/sockudo/storage"
)

const usage = `Usage: sockudo [command]

sockudo is a Pusher-protocol-compatible realtime server.

Commands:
  serve                      run the server (the default)
  apps list [--json]         list apps; secrets are never shown
  apps show <id>             print an app as JSON, secret hidden
  apps create [flags]        create an app and print its secret once
  apps update <id> [flags]   change only the settings given as flags
  apps delete <id>           delete an app
  apps rotate-secret <id>    new secret; the old one stays valid for --grace
  audit list                 print the audit log, newest first
  webhooks dead-letters list [--app id] [--json]
                             list webhook events given up on
  webhooks dead-letters replay [--app id] [--id n ...]
                             queue dead letters for delivery again
  version                    print the version
  help                       print this help

Settings come from environment variables (see README.md). The apps and audit
commands work on a running server through its admin socket (next to the
database, SOCKUDO_DB_PATH + ".sock") and changes apply at once; with no
server running they edit the database at SOCKUDO_DB_PATH (default
./sockudo.db) directly.
Run 'sockudo apps <command> -h' for the flags of an apps command.
`

const appsUsage = `Usage: sockudo apps <command> [arguments]

Commands:
  list [--json]              list apps; secrets are never shown
  show <id>                  print an app as JSON, secret hidden
  create [flags]             create an app and print its secret once
  update <id> [flags]        change only the settings given as flags
  delete <id>                delete an app
  rotate-secret <id>         new secret; the old one stays valid for --grace

Run 'sockudo apps <command> -h' for the flags of a command.
`

// hiddenSecret replaces the secret wherever an app is printed after creation.
const hiddenSecret = "(hidden)"

// run executes the command line args (without the program name) and returns
// the exit code: 0 success, 1 failure, 2 usage error. environ stands in for
// the process environment.
func run(ctx context.Context, args []string, environ map[string]string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		if len(args) > 0 {
			if isHelp(args[0]) {
				fmt.Fprint(stdout, usage)
				return 0
			}
			fmt.Fprintf(stderr, "sockudo serve takes no arguments, got %q\n\n%s", args, usage)
			return 2
		}
		return serve(ctx, environ, stderr)
	case "apps":
		return appsCmd(args, environ, stdout, stderr)
	case "webhooks":
		return webhooksCmd(args, environ, stdout, stderr)
	case "audit":
		return auditCmd(args, environ, &appsCLI{environ: environ, stdout: stdout, stderr: stderr, cmd: "sockudo audit list"})
	case "version", "--version":
		fmt.Fprintf(stdout, "sockudo %s (%s)\n", version, runtime.Version())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "healthcheck":
		// Hidden: the Docker HEALTHCHECK, since the image has no shell or curl.
		return healthcheck(environ, stderr)
	default:
		fmt.Fprintf(stderr, "sockudo: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// healthcheck GETs /up on the local server and returns 0 if it answers 200.
func healthcheck(environ map[string]string, stderr io.Writer) int {
	var lc listenConfig
	if ps := parseSection(&lc, environ); len(ps) > 0 {
		fmt.Fprintf(stderr, "healthcheck: %v\n", errors.Join(ps...))
		return 1
	}
	host := lc.Host
	// A wildcard listen address is reachable on loopback; a specific one
	// may not be.
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(lc.Port)) + "/up"
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: GET %s: %s\n", url, resp.Status)
		return 1
	}
	return 0
}

// appsCmd runs "sockudo apps <command>".
func appsCmd(args []string, environ map[string]string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, appsUsage)
		return 2
	}
	cmd, args := args[0], args[1:]
	c := &appsCLI{environ: environ, stdout: stdout, stderr: stderr, cmd: "sockudo apps " + cmd}
	switch cmd {
	case "list":
		return c.list(args)
	case "show":
		return c.show(args)
	case "create":
		return c.create(args)
	case "update":
		return c.update(args)
	case "delete":
		return c.delete(args)
	case "rotate-secret":
		return c.rotateSecret(args)
	default:
		if isHelp(cmd) {
			fmt.Fprint(stdout, appsUsage)
			return 0
		}
		fmt.Fprintf(stderr, "sockudo apps: unknown command %q\n\n%s", cmd, appsUsage)
		return 2
	}
}

// appsCLI is one apps subcommand's environment and output.
type appsCLI struct {
	environ        map[string]string
	stdout, stderr io.Writer
	cmd            string // "sockudo apps create", for messages
}

// failf reports a failure and returns exit code 1.
func (c *appsCLI) failf(format string, args ...any) int {
	fmt.Fprintf(c.stderr, c.cmd+": "+format+"\n", args...)
	return 1
}

// usagef reports a usage error and returns exit code 2.
func (c *appsCLI) usagef(format string, args ...any) int {
	fmt.Fprintf(c.stderr, c.cmd+": "+format+"\nRun '%s -h' for usage.\n", append(args, c.cmd)...)
	return 2
}

// flagSet returns a FlagSet for the subcommand whose usage line is synopsis.
func (c *appsCLI) flagSet(synopsis, about string) *flag.FlagSet {
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
func (c *appsCLI) parse(fs *flag.FlagSet, args []string, wantArgs int) (pos []string, code int, done bool) {
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
		if len(pos) == 0 {
			return nil, c.usagef("missing app id"), true
		}
		return nil, c.usagef("want one app id, got %q", pos), true
	}
	return pos, 0, false
}

// open opens the database for an apps command. mustExist refuses to create
// a new file, so a mistyped SOCKUDO_DB_PATH is reported rather than silently
// giving an empty database.
func (c *appsCLI) open(mustExist bool) (*storage.DB, int) {
	var sc storageConfig
	if ps := parseSection(&sc, c.environ); len(ps) > 0 {
		return nil, c.failf("%v", errors.Join(ps...))
	}
	if mustExist {
		if _, err := os.Stat(sc.DBPath); errors.Is(err, os.ErrNotExist) {
			return nil, c.failf("no database at %s (set SOCKUDO_DB_PATH, or create an app first)", sc.DBPath)
		}
	}
	db, err := storage.Open(sc.DBPath, &storage.Options{Timeout: dbLockTimeout})
	if errors.Is(err, storage.ErrLocked) {
		return nil, c.failf("database %s is in use: a server is running and its admin socket does not answer "+
			"(SOCKUDO_ADMIN_SOCKET_ENABLED=false, or another SOCKUDO_ADMIN_SOCKET); stop the server, or use "+
			"the signed HTTP API (audit, webhooks/dead_letters)", sc.DBPath)
	}
	if err != nil {
		return nil, c.failf("%v", err)
	}
	return db, 0
}

func (c *appsCLI) list(args []string) int {
	fs := c.flagSet("[--json]", "List every app, sorted by id. Secrets are never shown.")
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	db, code := c.openStore(true)
	if db == nil {
		return code
	}
	defer db.Close()
	apps, err := db.Apps()
	if err != nil {
		return c.failf("%v", err)
	}
	if *asJSON {
		for i := range apps {
			hideSecrets(&apps[i])
		}
		return c.printJSON(apps)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKEY\tENABLED\tFEATURES")
	for _, a := range apps {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", a.ID, a.Key, a.Enabled, features(a))
	}
	if err := tw.Flush(); err != nil {
		return c.failf("%v", err)
	}
	return 0
}

// features summarises an app's feature flags for the list table.
func features(a storage.App) string {
	var fs []string
	for _, s := range apps.Settings {
		if s.Feature && *s.Bool(&a) {
			fs = append(fs, strings.TrimPrefix(s.Flag, "enable-"))
		}
	}
	if len(fs) == 0 {
		return "-"
	}
	return strings.Join(fs, ",")
}

func (c *appsCLI) show(args []string) int {
	fs := c.flagSet("<id>", "Print the app as JSON. The secret is hidden.")
	pos, code, done := c.parse(fs, args, 1)
	if done {
		return code
	}
	db, code := c.openStore(true)
	if db == nil {
		return code
	}
	defer db.Close()
	a, err := db.App(pos[0])
	if errors.Is(err, storage.ErrNotFound) {
		return c.failf("no app with id %q", pos[0])
	}
	if err != nil {
		return c.failf("%v", err)
	}
	hideSecrets(&a)
	return c.printJSON(a)
}

func (c *appsCLI) create(args []string) int {
	fs := c.flagSet("[flags]", "Create an app and print it as JSON, secret included. The secret is not shown\n"+
		"again. Omitted --id, --key and --secret are generated at random.")
	id := fs.String("id", "", "app id (letters, digits, '-', '_', '.'); default: 9 random digits")
	set := registerAppFlags(fs, true)
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	a := storage.App{ID: *id}
	set.apply(fs, &a, true)
	if a.Key == "" {
		a.Key = randomHex(10)
	}
	if a.Secret == "" {
		a.Secret = randomHex(20)
	}
	if msg := appProblem(a, *id != ""); msg != "" {
		return c.usagef("%s", msg)
	}

	db, code := c.openStore(false)
	if db == nil {
		return code
	}
	defer db.Close()

	generateID := a.ID == ""
	for attempt := 0; ; attempt++ {
		if generateID {
			a.ID = randomDigits(9)
		}
		err := db.CreateApp(a)
		switch {
		case err == nil:
		case errors.Is(err, storage.ErrExists) && generateID && attempt < 5:
			continue
		case errors.Is(err, storage.ErrExists):
			return c.failf("an app with id %q already exists", a.ID)
		case errors.Is(err, storage.ErrKeyInUse):
			return c.failf("key %q already belongs to another app: %v", a.Key, err)
		default:
			return c.failf("%v", err)
		}
		break
	}
	stored, err := db.App(a.ID)
	if err != nil {
		return c.failf("%v", err)
	}
	if code := c.printJSON(stored); code != 0 {
		return code
	}
	// On stderr, so stdout stays one JSON document for scripts.
	fmt.Fprintf(c.stderr, "Created app %s. Save the secret now: sockudo will not show it again.\n", stored.ID)
	return 0
}

func (c *appsCLI) update(args []string) int {
	fs := c.flagSet("<id> [flags]", "Change the settings given as flags and leave the rest as they are.\n"+
		"Without flags nothing changes.")
	set := registerAppFlags(fs, false)
	pos, code, done := c.parse(fs, args, 1)
	if done {
		return code
	}
	id := pos[0]

	db, code := c.openStore(true)
	if db == nil {
		return code
	}
	defer db.Close()
	a, err := db.App(id)
	if errors.Is(err, storage.ErrNotFound) {
		return c.failf("no app with id %q", id)
	}
	if err != nil {
		return c.failf("%v", err)
	}
	if !set.apply(fs, &a, false) {
		fmt.Fprintf(c.stderr, "App %s unchanged: no flags given.\n", id)
		return 0
	}
	if msg := appProblem(a, false); msg != "" {
		return c.usagef("%s", msg)
	}
	if err := db.PutApp(a); err != nil {
		if errors.Is(err, storage.ErrKeyInUse) {
			return c.failf("key %q already belongs to another app: %v", a.Key, err)
		}
		return c.failf("%v", err)
	}
	c.noteDefaultApp(id)
	stored, err := db.App(id)
	if err != nil {
		return c.failf("%v", err)
	}
	hideSecrets(&stored)
	return c.printJSON(stored)
}

func (c *appsCLI) delete(args []string) int {
	fs := c.flagSet("<id>", "Delete the app and release its key.")
	pos, code, done := c.parse(fs, args, 1)
	if done {
		return code
	}
	id := pos[0]
	db, code := c.openStore(true)
	if db == nil {
		return code
	}
	defer db.Close()
	if err := db.DeleteApp(id); errors.Is(err, storage.ErrNotFound) {
		return c.failf("no app with id %q", id)
	} else if err != nil {
		return c.failf("%v", err)
	}
	fmt.Fprintf(c.stdout, "Deleted app %s.\n", id)
	c.noteDefaultApp(id)
	return 0
}

// noteDefaultApp warns when id is the env-configured default app, whose
// stored settings serve overwrites at every start.
func (c *appsCLI) noteDefaultApp(id string) {
	var dc defaultAppConfig
	if len(parseSection(&dc, c.environ)) == 0 && dc.ID == id {
		fmt.Fprintf(c.stderr, "Note: %s is the default app; the server resets it from the "+
			"SOCKUDO_DEFAULT_APP_* variables at every start.\n", id)
	}
}

func (c *appsCLI) printJSON(v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return c.failf("%v", err)
	}
	if _, err := fmt.Fprintf(c.stdout, "%s\n", b); err != nil {
		return c.failf("%v", err)
	}
	return 0
}

// appProblem checks an app built from flags; checkID is false when the id
// was generated or already stored.
func appProblem(a storage.App, checkID bool) string {
	if checkID {
		if msg := apps.IdentProblem(a.ID); msg != "" {
			return "--id: " + msg
		}
	}
	if msg := apps.IdentProblem(a.Key); msg != "" {
		return "--key: " + msg
	}
	if msg := apps.SecretProblem(a.Secret); msg != "" {
		return "--secret: " + msg
	}
	for _, s := range apps.Settings {
		if msg := s.Problem(a); msg != "" {
			return "--" + s.Flag + ": " + msg
		}
	}
	return ""
}

// appFlagSet holds the values of the flags registerAppFlags defined.
type appFlagSet struct {
	key, secret *string
	// settings copy the flag of each apps.Settings row into an app.
	settings map[string]func(*storage.App)
	webhooks webhooksFlag
}

// registerAppFlags defines the app settings flags on fs: one per
// apps.Settings row, defaulting to a new app's value, plus key, secret and
// webhooks. forCreate makes the key and secret usage that of a new app;
// update ignores defaults and applies only the flags given.
func registerAppFlags(fs *flag.FlagSet, forCreate bool) *appFlagSet {
	s := &appFlagSet{settings: map[string]func(*storage.App){}}
	keyUsage, secretUsage := "new app key", "new app secret"
	if forCreate {
		keyUsage, secretUsage = "app key; default: 20 random hex digits", "app secret; default: 40 random hex digits"
	}
	s.key = fs.String("key", "", keyUsage)
	s.secret = fs.String("secret", "", secretUsage)
	def := apps.Defaults()
	for _, st := range apps.Settings {
		switch {
		case st.Bool != nil:
			v := fs.Bool(st.Flag, *st.Bool(&def), st.Usage)
			s.settings[st.Flag] = func(a *storage.App) { *st.Bool(a) = *v }
		case st.Int != nil:
			v := fs.Int(st.Flag, *st.Int(&def), st.Usage)
			s.settings[st.Flag] = func(a *storage.App) { *st.Int(a) = *v }
		case st.List != nil:
			v := fs.String(st.Flag, st.Default, st.Usage)
			s.settings[st.Flag] = func(a *storage.App) { _ = st.Set(a, *v) } // a list always parses
		}
	}
	fs.Var(&s.webhooks, "webhooks", `webhook targets, a JSON array such as '[{"url":"https://x/hook",`+
		`"event_types":["channel_occupied"]}]' (README, Webhooks); '' removes them`)
	return s
}

// apply copies flag values into a: every flag if all is true (a new app,
// where defaults count), otherwise only those given on the command line. It
// reports whether any app setting was given on the command line.
func (s *appFlagSet) apply(fs *flag.FlagSet, a *storage.App, all bool) bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	use := func(name string) bool { return all || set[name] }

	if use("key") {
		a.Key = *s.key
	}
	if use("secret") {
		a.Secret = *s.secret
	}
	for name, copyTo := range s.settings {
		if use(name) {
			copyTo(a)
		}
	}
	if use("webhooks") {
		a.Webhooks = s.webhooks.hooks
	}
	delete(set, "id")
	return len(set) > 0
}

// randomHex returns n random bytes as 2n hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes instead)
	return hex.EncodeToString(b)
}

// randomDigits returns n random decimal digits, the first non-zero, in the
// style of Pusher's numeric app ids.
func randomDigits(n int) string {
	lo := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n-1)), nil)
	span := new(big.Int).Mul(lo, big.NewInt(9))
	v, _ := rand.Int(rand.Reader, span) // rand.Reader never fails
	return v.Add(v, lo).String()
}
