package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/storage"
	"github.com/sockudo/sockudo/webhooks"
)

const webhooksUsage = `Usage: sockudo webhooks dead-letters <command> [flags]
       sockudo webhooks queues [--app id] [--json]

Commands:
  dead-letters list [--app id] [--json] [--limit n]
                             list webhook events given up on, oldest first
  dead-letters replay [--app id] [--id n ...] [--json]
                             queue them for delivery again (all, or by id)
  queues [--app id] [--json] the targets' queues: events waiting, failures in
                             a row and the next attempt (with no server
                             running: what waits in the database)

They go through the running server's admin socket, or open the database at
SOCKUDO_DB_PATH when no server runs (a replay is then delivered at the next
start). The HTTP API offers the same, signed like the REST API:
GET /apps/{app_id}/webhooks/dead_letters and
POST /apps/{app_id}/webhooks/dead_letters/replay.
`

// webhooksCmd runs "sockudo webhooks dead-letters <command>".
func webhooksCmd(args []string, in invocation) int {
	if len(args) == 0 || isHelp(args[0]) {
		out := in.stderr
		code := 2
		if len(args) > 0 {
			out, code = in.stdout, 0
		}
		fmt.Fprint(out, webhooksUsage)
		return code
	}
	if args[0] == "queues" {
		return in.command("sockudo webhooks queues").webhookQueues(args[1:])
	}
	if args[0] != "dead-letters" || len(args) < 2 {
		fmt.Fprintf(in.stderr, "sockudo webhooks: unknown command %q\n\n%s", strings.Join(args, " "), webhooksUsage)
		return 2
	}
	return runGroup("sockudo webhooks dead-letters", webhooksUsage, deadLetterCommands, args[1:], in)
}

// deadLetterCommands are the commands of "sockudo webhooks dead-letters".
var deadLetterCommands = map[string]func(*command, []string) int{
	"list":   (*command).deadLettersList,
	"replay": (*command).deadLettersReplay,
}

func (c *command) deadLettersList(args []string) int {
	fs := c.flagSet("[--app id] [--json] [--limit n]", "List dead letters (webhook events given up on), oldest first.")
	app := fs.String("app", "", "only this app's dead letters")
	asJSON := fs.Bool("json", false, "print a JSON array (full URLs and events)")
	limit := fs.Int("limit", 0, "at most this many (0 = all)")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	// The running server's admin socket and the database both list them.
	var dead []storage.DeadLetter
	read := func(src interface {
		DeadLetters(app string, limit int) ([]storage.DeadLetter, error)
	}) int {
		var err error
		if dead, err = src.DeadLetters(*app, *limit); err != nil {
			return c.fail(err)
		}
		return 0
	}
	var code int
	if cl := c.adminClient(); cl != nil {
		defer cl.Close()
		code = read(cl)
	} else {
		code = c.withDB(func(db *storage.DB) int { return read(db) })
	}
	if code != 0 {
		return code
	}
	if *asJSON {
		return c.printJSON(dead)
	}
	code = c.printTable("ID\tAPP\tURL\tEVENT\tATTEMPTS\tDEAD AT\tREASON", func(w io.Writer) {
		for _, d := range dead {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.App, shortURL(d.URL), eventSummary(d.Event),
				d.Attempts, d.DeadAt.Format(time.RFC3339), d.Reason)
		}
	})
	if code != 0 {
		return code
	}
	if len(dead) == 0 {
		fmt.Fprintln(c.stderr, "No dead letters.")
	}
	return 0
}

func (c *command) deadLettersReplay(args []string) int {
	fs := c.flagSet("[--app id] [--id n ...]", "Move dead letters back into the webhook queue; the server delivers\n"+
		"them when it starts. Without --id, all of them (of --app, or of every app).\n"+
		"Those whose target is no longer configured stay.")
	app := fs.String("app", "", "only this app's dead letters")
	var ids idList
	fs.Var(&ids, "id", "a dead letter id (repeat, or give a comma list)")
	asJSON := jsonFlag(fs, `print {"replayed": n, "skipped": n, "running": bool}`)
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	if cl := c.adminClient(); cl != nil {
		defer cl.Close()
		res, err := cl.ReplayDeadLetters(*app, ids)
		if err != nil {
			return c.fail(err)
		}
		if *asJSON {
			return c.printJSON(replayAnswer{Replayed: res.Replayed, Skipped: res.Skipped, Running: true})
		}
		fmt.Fprintf(c.stdout, "Replayed %d dead letters into the running server's queue.\n", res.Replayed)
		if res.Skipped > 0 {
			fmt.Fprintf(c.stdout, "Skipped %d whose webhook target is no longer configured.\n", res.Skipped)
		}
		return 0
	}
	return c.withDB(func(db *storage.DB) int {
		apps, err := db.Apps()
		if err != nil {
			return c.failf("%v", err)
		}
		queues, skipped, err := db.ReplayDeadLetters(*app, ids, time.Now(), webhooks.Configured(apps))
		if err != nil {
			return c.failf("%v", err)
		}
		n := 0
		for _, q := range queues {
			n += q.Len
		}
		if *asJSON {
			return c.printJSON(replayAnswer{Replayed: n, Skipped: skipped})
		}
		fmt.Fprintf(c.stdout, "Replayed %d dead letters; the server delivers them when it starts.\n", n)
		if skipped > 0 {
			fmt.Fprintf(c.stdout, "Skipped %d whose webhook target is no longer configured.\n", skipped)
		}
		return 0
	})
}

func (c *command) webhookQueues(args []string) int {
	fs := c.flagSet("[--app id] [--json]", "Print the webhook targets' queues: events waiting, consecutive failures and\n"+
		"the next attempt. With no server running, what waits in the database.")
	app := fs.String("app", "", "only this app's targets")
	asJSON := jsonFlag(fs, "print a JSON array (full URLs)")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	var qs []admin.WebhookQueue
	if cl := c.adminClient(); cl != nil {
		defer cl.Close()
		var err error
		if qs, err = cl.WebhookQueues(*app); err != nil {
			return c.fail(err)
		}
	} else if code := c.withDB(func(db *storage.DB) int {
		stored, err := db.WebhookQueues()
		if err != nil {
			return c.fail(err)
		}
		for _, q := range stored {
			if *app == "" || q.App == *app {
				qs = append(qs, admin.WebhookQueue{App: q.App, URL: q.URL, Pending: int64(q.Len)})
			}
		}
		return exitOK
	}); code != exitOK {
		return code
	}
	if qs == nil {
		qs = []admin.WebhookQueue{}
	}
	if *asJSON {
		return c.printJSON(qs)
	}
	return c.printTable("APP\tURL\tPENDING\tFAILURES\tNEXT ATTEMPT", func(w io.Writer) {
		for _, q := range qs {
			next := "now"
			if !q.NextAttempt.IsZero() {
				next = q.NextAttempt.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\n", q.App, shortURL(q.URL), q.Pending, q.Failures, next)
		}
	})
}

// replayAnswer is what "webhooks dead-letters replay --json" prints.
type replayAnswer struct {
	Replayed int `json:"replayed"`
	Skipped  int `json:"skipped"`
	// Running is true when a running server took them (delivered now),
	// false when they wait in the database for the next start.
	Running bool `json:"running"`
}

// idList is a repeatable flag of dead-letter ids.
type idList []uint64

func (l *idList) String() string {
	var s []string
	for _, id := range *l {
		s = append(s, strconv.FormatUint(id, 10))
	}
	return strings.Join(s, ",")
}

func (l *idList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		id, err := strconv.ParseUint(strings.TrimSpace(part), 10, 64)
		if err != nil || id == 0 {
			return fmt.Errorf("%q is not a dead letter id", part)
		}
		*l = append(*l, id)
	}
	return nil
}

// webhooksFlag is --webhooks: a JSON array of webhook targets, parsed and
// validated when the flag is read.
type webhooksFlag struct {
	raw   string
	hooks []storage.Webhook
}

func (f *webhooksFlag) String() string { return f.raw }

func (f *webhooksFlag) Set(v string) error {
	hooks, err := webhooks.ParseTargets(v)
	if err != nil {
		return err
	}
	f.raw, f.hooks = v, hooks
	return nil
}

// shortURL drops what may carry credentials (userinfo, query) for the
// table; --json shows the URL as stored.
func shortURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// eventSummary is "name channel" of an event object.
func eventSummary(raw []byte) string {
	var e struct{ Name, Channel string }
	if json.Unmarshal(raw, &e) != nil {
		return "?"
	}
	return e.Name + " " + e.Channel
}
