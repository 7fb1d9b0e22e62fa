package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/sockudo/sockudo/push"
)

const usage = `Usage: sockudo [command]

sockudo is a Pusher-protocol-compatible realtime server.

Commands:
  serve                      run the server (the default)
  doctor [--json]            check the configuration in the environment and
                             print what to fix; exit 1 when an error is found
  apps list|show|create|update|delete|rotate-secret
                             manage apps; secrets are shown only by create
                             and rotate-secret ('sockudo apps help')
  apps beams-key generate|rotate|revoke <id>
                             the app's Pusher Beams secret key, printed once
  audit list                 print the audit log, newest first
  audit verify [--app id]    check the push audit trail's hash chains; exit 1
                             when one is broken
  webhooks dead-letters list|replay
                             list webhook events given up on, or queue them
                             for delivery again
  webhooks queues            the webhook targets' queues
  push credentials list|put|generate-vapid|revoke|validate|reseal
                             manage push provider credentials
  push devices list|show|delete
                             list, show or delete push devices
  push publishes list|show|cancel|deliveries
                             push publishes: status, cancel, deliveries
  push dead-letters list|replay
                             push deliveries given up on, or send them again
  push limits                an app's publish limits and today's usage
  version [--json]           print the version
  help                       print this help

Every command but serve and help takes --json and then prints one JSON
document on stdout (messages for people go to stderr).

Exit codes:
  0  success (doctor: no errors; warnings allowed)
  1  failure: the server or the database refused or failed, a conflict, a
     broken audit chain, a credential that does not work, a doctor error
  2  usage error or invalid input (unknown command or flag, a bad value,
     input the server refused as invalid)
  3  not found: the app, device or credential version named does not exist

Settings come from environment variables (see README.md). The commands work
on a running server through its admin socket (next to the database,
SOCKUDO_DB_PATH + ".sock") and changes apply at once; with no server running
they edit the database at SOCKUDO_DB_PATH (default ./sockudo.db) directly.
Run 'sockudo <command> -h' for the flags of a command.
`

// Program is what package main gives the command line: the version, the
// server (serve), and how to read the settings the commands share with it.
// The variables stay main's, described once in its Config.
type Program struct {
	// Version is printed by "sockudo version".
	Version string
	// Serve runs the server, for "sockudo serve" and for no command at all,
	// and returns the exit code.
	Serve func(ctx context.Context, environ map[string]string, stderr io.Writer) int
	// Settings reads what the other commands need from environ.
	Settings func(environ map[string]string) Settings
	// LockTimeout is how long a command waits for the database lock.
	LockTimeout time.Duration
	// Doctor checks the configuration in environ and returns its
	// findings, for "sockudo doctor"; it changes nothing. Nil makes the
	// command fail.
	Doctor func(ctx context.Context, environ map[string]string) []Finding
}

// Settings are the configuration the commands read: one command needs only
// some of it, so a variable that fails to parse only stops the commands
// that need it.
type Settings struct {
	// DBPath is SOCKUDO_DB_PATH; DBPathErr says why it could not be read.
	DBPath    string
	DBPathErr error
	// AdminSocket is the running server's admin socket; empty when the
	// socket is disabled or its variables could not be read.
	AdminSocket string
	// DefaultAppID is SOCKUDO_DEFAULT_APP_ID; empty when the default app's
	// variables could not be read.
	DefaultAppID string
	// Host and Port are where the server listens (HOST, PORT); ListenErr
	// says why they could not be read.
	Host      string
	Port      int
	ListenErr error
	// Push is what the push credential commands need.
	Push PushSettings
}

// PushSettings are the push settings the credential commands share with
// the server (PUSH_*).
type PushSettings struct {
	// CredentialKey is the 32-byte credential encryption key, "" when none
	// is set; CredentialKeyErr says why it could not be read.
	CredentialKey    string
	CredentialKeyErr error
	// PreviousCredentialKeys are the previous keys (32 bytes each,
	// concatenated), which open but never seal.
	PreviousCredentialKeys string
	// APNsEndpoint, FCMEndpoint, FCMTokenURL and AllowLocalWebPush are the
	// provider settings credentials are checked and built against.
	APNsEndpoint, FCMEndpoint, FCMTokenURL string
	AllowLocalWebPush                      bool
}

func (p PushSettings) config() push.Config {
	cfg := push.Config{APNsEndpoint: p.APNsEndpoint, FCMEndpoint: p.FCMEndpoint, FCMTokenURL: p.FCMTokenURL,
		AllowLocalWebPush: p.AllowLocalWebPush}
	if p.CredentialKey != "" {
		cfg.CredentialKey = []byte(p.CredentialKey)
	}
	for k := p.PreviousCredentialKeys; len(k) >= 32; k = k[32:] {
		cfg.PreviousCredentialKeys = append(cfg.PreviousCredentialKeys, []byte(k[:32]))
	}
	return cfg
}

// Run executes the command line args (without the program name) and
// returns the exit code: 0 success, 1 failure, 2 usage error. environ
// stands in for the process environment.
func Run(ctx context.Context, args []string, environ map[string]string, stdout, stderr io.Writer, p Program) int {
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
		return p.Serve(ctx, environ, stderr)
	case "apps":
		return runGroup("sockudo apps", appsUsage, appsCommands, args, p.invocation(environ, stdout, stderr))
	case "webhooks":
		return webhooksCmd(args, p.invocation(environ, stdout, stderr))
	case "push":
		return pushCmd(args, p.invocation(environ, stdout, stderr))
	case "doctor":
		return doctorCmd(ctx, args, environ, p.invocation(environ, stdout, stderr), p.Doctor)
	case "audit":
		return auditCmd(args, p.invocation(environ, stdout, stderr))
	case "version", "--version":
		return versionCmd(args, p.Version, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "healthcheck":
		// Hidden: the Docker HEALTHCHECK, since the image has no shell or curl.
		return healthcheck(p.Settings(environ), stderr)
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

// versionCmd runs "sockudo version [--json]".
func versionCmd(args []string, version string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		fmt.Fprintf(stdout, "sockudo %s (%s)\n", version, runtime.Version())
		return exitOK
	case len(args) == 1 && args[0] == "--json":
		b, _ := json.Marshal(map[string]string{"version": version, "go": runtime.Version()})
		fmt.Fprintf(stdout, "%s\n", b)
		return exitOK
	case len(args) == 1 && isHelp(args[0]):
		fmt.Fprintln(stdout, "Usage: sockudo version [--json]")
		return exitOK
	}
	fmt.Fprintf(stderr, "sockudo version: unexpected arguments %q\nUsage: sockudo version [--json]\n", args)
	return exitUsage
}
