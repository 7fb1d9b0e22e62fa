package cli

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/sockudo/sockudo/storage"
)

const auditUsage = `Usage: sockudo audit list [--since 1h|2026-01-02T15:04:05Z] [--app id] [--action name] [--limit n] [--json]
       sockudo audit verify [--app id] [--json]

list prints the audit log, newest first: denied channel auth and signins,
refused origins, rate-limit trips, API signature failures (repeats from one
IP within AUDIT_AGGREGATION_WINDOW_SECONDS are one entry: COUNT, first seen
in TIME, LAST SEEN), app and secret changes and dead-letter replays.

verify checks the hash chain of the push audit trail of one app, or of every
app: it exits 0 when every chain is intact and 1 when one is not, naming the
app, the first entry changed, missing or out of place, and the problem.

Both work against a running server (through its admin socket) or a stopped
one.
`

// auditCmd runs "sockudo audit <command>".
func auditCmd(args []string, in invocation) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "verify") {
		if len(args) > 0 && isHelp(args[0]) {
			fmt.Fprint(in.stdout, auditUsage)
			return 0
		}
		fmt.Fprint(in.stderr, auditUsage)
		return 2
	}
	c := in.command("sockudo audit " + args[0])
	if args[0] == "verify" {
		return auditVerify(args[1:], c)
	}
	fs := flag.NewFlagSet("sockudo audit list", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), auditUsage) }
	since := fs.String("since", "", "only entries this recent: a duration (1h) or an RFC 3339 time")
	app := fs.String("app", "", "only this app")
	action := fs.String("action", "", "only this action (auth_denied, rate_limited, secret_rotated, ...)")
	limit := fs.Int("limit", 100, "at most this many entries")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if _, code, done := c.parse(fs, args[1:], 0); done {
		return code
	}
	f := storage.AuditFilter{App: *app, Action: *action, Limit: *limit}
	if *since != "" {
		if d, err := time.ParseDuration(*since); err == nil {
			f.Since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, *since); err == nil {
			f.Since = t
		} else {
			return c.usagef("--since must be a duration (1h) or an RFC 3339 time, got %q", *since)
		}
	}
	return c.withStore(true, func(st appStore) int {
		entries, err := st.Audit(f)
		if err != nil {
			return c.fail(err)
		}
		if *asJSON {
			return c.printJSON(entries)
		}
		// A refusal repeated from one IP is one entry: TIME is when it was
		// first seen, COUNT how often and LAST SEEN the last time.
		return c.printTable("TIME\tAPP\tACTION\tIP\tCHANNEL\tREASON\tCOUNT\tLAST SEEN", func(w io.Writer) {
			for _, e := range entries {
				count, last := "-", "-"
				if e.Count > 0 {
					count = strconv.Itoa(e.Count)
				}
				if e.Count > 1 {
					last = e.LastSeen.Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), dash(e.App), e.Action,
					dash(e.IP), dash(e.Channel), dash(e.Reason), count, last)
			}
		})
	})
}

// auditVerify runs "sockudo audit verify".
func auditVerify(args []string, c *command) int {
	fs := flag.NewFlagSet(c.cmd, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), auditUsage) }
	app := fs.String("app", "", "only this app's chain")
	asJSON := fs.Bool("json", false, "print the reports as a JSON array")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	var reports []storage.PushAuditReport
	if code := c.withStore(true, func(st appStore) int {
		var err error
		if reports, err = st.VerifyPushAudit(*app); err != nil {
			return c.fail(err)
		}
		return 0
	}); code != 0 {
		return code
	}
	var code int
	if *asJSON {
		code = c.printJSON(reports)
	} else {
		code = c.printTable("APP\tENTRIES\tOK\tFIRST BAD\tPROBLEM", func(w io.Writer) {
			for _, r := range reports {
				bad := "-"
				if !r.OK {
					bad = strconv.FormatUint(r.FirstBad, 10)
				}
				fmt.Fprintf(w, "%s\t%d\t%t\t%s\t%s\n", r.App, r.Entries, r.OK, bad, dash(r.Problem))
			}
		})
	}
	if code != 0 {
		return code
	}
	// A broken chain fails the command, so a cron job or a CI step notices.
	for _, r := range reports {
		switch {
		case r.OK:
		case r.FirstBad == 0: // the chain record itself
			code = c.failf("app %q: chain broken: %s", r.App, r.Problem)
		default:
			code = c.failf("app %q: chain broken at entry %d: %s", r.App, r.FirstBad, r.Problem)
		}
	}
	return code
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
