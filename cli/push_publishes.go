package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/storage"
)

const pushPublishesUsage = `Usage: sockudo push publishes <command> [flags]
       sockudo push dead-letters <command> [flags]
       sockudo push limits [--app id] [--json]

Commands of publishes:
  list [--app id] [--state s] [--since t] [--until t] [--limit n] [--cursor c] [--json]
                             an app's publishes, oldest first
  show [--app id] <publish>  a publish's status and counters
  cancel [--app id] <publish> [--partial]
                             cancel a publish not sent yet (--partial: stop
                             what is not sent of one being sent)
  deliveries [--app id] <publish>
                             its deliveries (tokens as hash and last 6)

Commands of dead-letters:
  list [--app id] [--limit n] [--json]   deliveries given up on
  replay [--app id] [--id n ...] [--json] send them again (all, or by id)

limits prints the app's publish limits and today's usage; it needs a
running server (the counters are its own).

They go through the running server's admin socket, or open the database at
SOCKUDO_DB_PATH when no server runs (a replay is then sent at the next
start). They answer what the signed HTTP API answers
(/apps/{app_id}/push/publishes..., /push/dead_letters, /push/limits);
--json prints that answer as it is. --app defaults to SOCKUDO_DEFAULT_APP_ID.
`

// pushAPI reaches the push API's operator routes (push.Service.AdminHandler):
// *admin.Client over the admin socket, or localPushAPI in process.
type pushAPI interface {
	Raw(method, path string, body []byte) (status int, answer []byte, err error)
}

// callPush calls path on api and decodes a 2xx answer into out; an error
// answer becomes a *push.CredentialError (the push API's error shape, which
// credentialFail maps to the exit codes).
func callPush(api pushAPI, method, path string, body []byte, out any) error {
	status, answer, err := api.Raw(method, path, body)
	if err != nil {
		return err
	}
	if status >= 300 {
		var e struct{ Error, Description string }
		if json.Unmarshal(answer, &e) != nil || e.Error == "" {
			return fmt.Errorf("the server answered %d", status)
		}
		return &push.CredentialError{Status: status, Code: e.Error, Description: e.Description}
	}
	return json.Unmarshal(answer, out)
}

// localPushAPI serves the operator routes in process on the database, for
// when no server runs.
type localPushAPI struct{ h http.Handler }

func (l localPushAPI) Raw(method, path string, body []byte) (int, []byte, error) {
	r, err := http.NewRequest(method, "http://local"+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	w := &answerWriter{header: http.Header{}}
	l.h.ServeHTTP(w, r)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.status, w.body.Bytes(), nil
}

// answerWriter keeps what a handler wrote.
type answerWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *answerWriter) Header() http.Header { return w.header }
func (w *answerWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}
func (w *answerWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

// dbApps answers push.Apps from the database, for localPushAPI.
type dbApps struct{ db *storage.DB }

func (d dbApps) AppCredentials(id string) (string, []string, bool) {
	a, err := d.db.App(id)
	if err != nil || !a.Enabled {
		return "", nil, false
	}
	return a.Key, []string{a.Secret}, true
}

func (d dbApps) AppBeamsKeys(string) []string { return nil }

func (d dbApps) AppPushLimits(id string) storage.AppPushLimits {
	a, _ := d.db.App(id)
	return a.PushLimits
}

// withPushAPI runs fn on the running server's admin socket, else (unless
// needServer) on the database in process, auditing as "cli".
func (c *command) withPushAPI(needServer bool, fn func(api pushAPI) int) int {
	if cl := c.adminClient(); cl != nil {
		defer cl.Close()
		return fn(cl)
	}
	if needServer {
		return c.failf("needs a running server (its admin socket at %s does not answer)", c.settings.AdminSocket)
	}
	db, code := c.open(true)
	if db == nil {
		return code
	}
	defer db.Close()
	audit := &syncAudit{db: db}
	svc, err := push.New(push.Config{}, push.Deps{DB: db, Apps: dbApps{db}, Audit: audit, Trail: audit.Trail})
	if err != nil {
		return c.failf("%v", err)
	}
	if code := fn(localPushAPI{svc.AdminHandler()}); code != exitOK {
		return code
	}
	if err := errors.Join(audit.errs...); err != nil {
		return c.failf("done, but its audit entry was not written: %v", err)
	}
	return exitOK
}

func pushPath(app string, rest string) string {
	return "/apps/" + url.PathEscape(app) + "/push/" + rest
}

// pushPublishesCmd runs "sockudo push publishes <command>".
func pushPublishesCmd(args []string, in invocation) int {
	return runGroup("sockudo push publishes", pushPublishesUsage, map[string]func(*command, []string) int{
		"list":       (*command).pushPublishesList,
		"show":       (*command).pushPublishShow,
		"cancel":     (*command).pushPublishCancel,
		"deliveries": (*command).pushPublishDeliveries,
	}, args, in)
}

// pushDeadLettersCmd runs "sockudo push dead-letters <command>".
func pushDeadLettersCmd(args []string, in invocation) int {
	return runGroup("sockudo push dead-letters", pushPublishesUsage, map[string]func(*command, []string) int{
		"list":   (*command).pushDeadLettersList,
		"replay": (*command).pushDeadLettersReplay,
	}, args, in)
}

// appRequired reports a missing --app.
func (c *command) appRequired(app string) (int, bool) {
	if app == "" {
		return c.usagef("--app is required (no SOCKUDO_DEFAULT_APP_ID)"), false
	}
	return 0, true
}

// passJSON calls path and prints the answer as indented JSON.
func (c *command) passJSON(needServer bool, method, path string, body []byte) int {
	return c.withPushAPI(needServer, func(api pushAPI) int {
		var v any
		if err := callPush(api, method, path, body, &v); err != nil {
			return c.credentialFail(err)
		}
		return c.printJSON(v)
	})
}

func (c *command) pushPublishesList(args []string) int {
	fs := c.flagSet("[--app id] [--state s] [--since t] [--until t] [--limit n] [--cursor c] [--json]",
		"List an app's push publishes, oldest first; --cursor continues after a page.")
	app := c.appFlag(fs)
	state := fs.String("state", "", "only this state (queued, dispatching, succeeded, failed, cancelled, ...)")
	since := fs.String("since", "", "only those created since: a duration (1h) or an RFC 3339 time")
	until := fs.String("until", "", "only those created before: a duration ago (10m) or an RFC 3339 time")
	limit := fs.Int("limit", 100, "at most this many (1-1000)")
	cursor := fs.String("cursor", "", "the next_cursor a previous page printed")
	asJSON := jsonFlag(fs, "print the API's answer: {items, next_cursor}")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	if code, ok := c.appRequired(*app); !ok {
		return code
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	for name, v := range map[string]string{"since": *since, "until": *until} {
		if v == "" {
			continue
		}
		t, ok := parseWhen(v)
		if !ok {
			return c.usagef("--%s must be a duration (1h) or an RFC 3339 time, got %q", name, v)
		}
		q.Set(name, strconv.FormatInt(t.Unix(), 10))
	}
	if *state != "" {
		q.Set("state", *state)
	}
	if *cursor != "" {
		q.Set("cursor", *cursor)
	}
	path := pushPath(*app, "publishes?"+q.Encode())
	if *asJSON {
		return c.passJSON(false, "GET", path, nil)
	}
	return c.withPushAPI(false, func(api pushAPI) int {
		var page struct {
			Items      []push.PublishView `json:"items"`
			NextCursor string             `json:"next_cursor"`
		}
		if err := callPush(api, "GET", path, nil, &page); err != nil {
			return c.credentialFail(err)
		}
		code := c.printTable("ID\tSTATE\tCREATED\tPLANNED\tSENT\tFAILED\tINVALIDATED", func(w io.Writer) {
			for _, p := range page.Items {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", p.ID, p.State, time.Unix(p.CreatedAt, 0).UTC().Format(time.RFC3339),
					p.Counters.Planned, p.Counters.Sent, p.Counters.Failed, p.Counters.Invalidated)
			}
		})
		if code == exitOK && page.NextCursor != "" {
			fmt.Fprintf(c.stdout, "more: --cursor %s\n", page.NextCursor)
		}
		return code
	})
}

// parseWhen reads a duration ago or an RFC 3339 time.
func parseWhen(v string) (time.Time, bool) {
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), true
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, true
	}
	return time.Time{}, false
}

func (c *command) pushPublishShow(args []string) int {
	return c.pushPublishGet(args, "Print a publish's status and counters as JSON (the API's answer).", "")
}

// pushPublishGet prints GET publishes/<publish><suffix> of one publish.
func (c *command) pushPublishGet(args []string, help, suffix string) int {
	fs := c.flagSet("[--app id] <publish> [--json]", help)
	app := c.appFlag(fs)
	_ = jsonFlag(fs, "print JSON (the only format)")
	c.argName = "publish id"
	pos, code, done := c.parse(fs, args, 1)
	if done {
		return code
	}
	if code, ok := c.appRequired(*app); !ok {
		return code
	}
	return c.passJSON(false, "GET", pushPath(*app, "publishes/"+url.PathEscape(pos[0])+suffix), nil)
}

func (c *command) pushPublishCancel(args []string) int {
	fs := c.flagSet("[--app id] <publish> [--partial] [--json]", "Cancel a publish that is not being sent yet and print it. With --partial, a\n"+
		"publish being sent stops what is not sent yet. Audited.")
	app := c.appFlag(fs)
	partial := fs.Bool("partial", false, "stop the unsent part of a publish being sent")
	_ = jsonFlag(fs, "print JSON (the only format)")
	c.argName = "publish id"
	pos, code, done := c.parse(fs, args, 1)
	if done {
		return code
	}
	if code, ok := c.appRequired(*app); !ok {
		return code
	}
	path := pushPath(*app, "publishes/"+url.PathEscape(pos[0]))
	if *partial {
		path += "?partial=true"
	}
	return c.passJSON(false, "DELETE", path, nil)
}

func (c *command) pushPublishDeliveries(args []string) int {
	return c.pushPublishGet(args, "Print a publish's deliveries as JSON (tokens as hash and last 6 characters).", "/deliveries")
}

func (c *command) pushDeadLettersList(args []string) int {
	fs := c.flagSet("[--app id] [--limit n] [--json]", "Print an app's dead push deliveries as JSON (the API's answer).")
	app := c.appFlag(fs)
	limit := fs.Int("limit", 1000, "at most this many")
	_ = jsonFlag(fs, "print JSON (the only format)")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	if code, ok := c.appRequired(*app); !ok {
		return code
	}
	return c.passJSON(false, "GET", pushPath(*app, "dead_letters?limit="+strconv.Itoa(*limit)), nil)
}

func (c *command) pushDeadLettersReplay(args []string) int {
	fs := c.flagSet("[--app id] [--id n ...] [--json]", "Queue dead push deliveries to be sent again: all of the app's, or those given\n"+
		"by --id. Audited.")
	app := c.appFlag(fs)
	var ids idList
	fs.Var(&ids, "id", "a dead delivery id (repeat, or give a comma list)")
	asJSON := jsonFlag(fs, `print {"replayed": n}`)
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	if code, ok := c.appRequired(*app); !ok {
		return code
	}
	body, _ := json.Marshal(map[string][]uint64{"ids": ids})
	return c.withPushAPI(false, func(api pushAPI) int {
		var res struct {
			Replayed int `json:"replayed"`
		}
		if err := callPush(api, "POST", pushPath(*app, "dead_letters/replay"), body, &res); err != nil {
			return c.credentialFail(err)
		}
		if *asJSON {
			return c.printJSON(res)
		}
		fmt.Fprintf(c.stdout, "Replayed %d dead push deliveries of app %s.\n", res.Replayed, *app)
		return exitOK
	})
}

// pushLimitsCmd runs "sockudo push limits".
func pushLimitsCmd(args []string, in invocation) int {
	c := in.command("sockudo push limits")
	fs := c.flagSet("[--app id] [--json]", "Print the app's push publish limits and today's usage as JSON (the running\nserver's counters).")
	app := c.appFlag(fs)
	_ = jsonFlag(fs, "print JSON (the only format)")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	if code, ok := c.appRequired(*app); !ok {
		return code
	}
	return c.passJSON(true, "GET", pushPath(*app, "limits"), nil)
}
