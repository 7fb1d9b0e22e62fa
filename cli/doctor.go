package cli

import (
	"context"
	"fmt"
	"io"
)

// Severity ranks a doctor finding.
type Severity string

// The severities of a [Finding], worst first. Only SeverityError makes
// "sockudo doctor" exit 1.
const (
	// SeverityError: the server will not start, or a feature cannot work.
	SeverityError Severity = "error"
	// SeverityWarn: it works, but it is unsafe or likely a mistake.
	SeverityWarn Severity = "warn"
	// SeverityOK: the check passed; Message says what was checked.
	SeverityOK Severity = "ok"
)

// Finding is one result of a doctor check.
type Finding struct {
	Severity Severity `json:"severity"`
	// Check names what was checked: config, port, metrics_port, database,
	// admin_socket, tls, redis, default_app, push_key, webhooks, web_push,
	// debug.
	Check string `json:"check"`
	// Message says what was found, naming the variable concerned.
	Message string `json:"message"`
	// Fix says what to change; empty for SeverityOK.
	Fix string `json:"fix,omitempty"`
}

const doctorUsage = `Usage: sockudo doctor [--json]

Check the configuration in the environment (the same variables serve reads)
and print one line per finding: its severity (error, warn, ok), the check and
what to fix. It changes nothing. Checks: the configuration parses and is
valid; PORT and METRICS_PORT can be bound; the database directory is
writable and no other process holds the database; the admin socket's
directory is private; the TLS certificate and
key are readable and a valid pair (SSL_ENABLED); Redis answers PING
(ADAPTER_DRIVER=redis or RATE_LIMITER_DRIVER=redis); the default app's
credentials are not the public defaults; PUSH_CREDENTIAL_ENCRYPTION_KEY is
set when push credentials are stored; unsafe test settings are off.

Run it before starting the server. Against a running server (docker exec
<container> /sockudo doctor) its own port and database lock are reported as
ok.

Exit codes: 0 no errors (warnings allowed), 1 an error was found, 2 usage.

Flags:
  --json   print {"ok": bool, "findings": [{severity, check, message, fix}]}
`

// doctorCmd runs "sockudo doctor".
func doctorCmd(ctx context.Context, args []string, environ map[string]string, in invocation,
	check func(context.Context, map[string]string) []Finding) int {
	c := in.command("sockudo doctor")
	fs := c.flagSet("[--json]", "")
	fs.Usage = func() { fmt.Fprint(fs.Output(), doctorUsage) }
	asJSON := jsonFlag(fs, "print the findings as JSON")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	if check == nil {
		return c.failf("no checks in this build")
	}
	findings := check(ctx, environ)
	ok := true
	for _, f := range findings {
		if f.Severity == SeverityError {
			ok = false
		}
	}
	if *asJSON {
		if code := c.printJSON(struct {
			OK       bool      `json:"ok"`
			Findings []Finding `json:"findings"`
		}{ok, findings}); code != exitOK {
			return code
		}
	} else {
		printFindings(c.stdout, findings)
	}
	if !ok {
		return exitFailure
	}
	return exitOK
}

// printFindings writes one line per finding: "ERROR port: ... Fix: ...".
func printFindings(w io.Writer, findings []Finding) {
	labels := map[Severity]string{SeverityError: "ERROR", SeverityWarn: "WARN ", SeverityOK: "ok   "}
	for _, f := range findings {
		line := fmt.Sprintf("%s %s: %s", labels[f.Severity], f.Check, f.Message)
		if f.Fix != "" {
			line += " Fix: " + f.Fix
		}
		fmt.Fprintln(w, line)
	}
}
