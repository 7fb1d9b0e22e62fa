package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/storage"
)

const pushDevicesUsage = `Usage: sockudo push devices <command> [flags]

Commands:
  list [--app id] [--user id] [--platform apns|fcm|web] [--interest name]
       [--channel name] [--limit n] [--cursor c] [--json]
                             list an app's push devices, by device id
  show [--app id] <device>   print a device as JSON
  delete [--app id] <device> delete a device (audited)

They go through the running server's admin socket, or open the database at
SOCKUDO_DB_PATH when no server runs. The signed HTTP API offers the same
(GET/DELETE /apps/{app_id}/push/devices...). Tokens are shown only as their
SHA-256 and last 6 characters; device secrets never.
`

// pushDevicesCmd runs "sockudo push devices <command>"; args follow
// "devices".
func pushDevicesCmd(args []string, in invocation) int {
	return runGroup("sockudo push devices", pushDevicesUsage, pushDeviceCommands, args, in)
}

var pushDeviceCommands = map[string]func(*command, []string) int{
	"list":   (*command).pushDevicesList,
	"show":   (*command).pushDevicesShow,
	"delete": (*command).pushDevicesDelete,
}

// lineOf is a device as the CLI prints it: the API's view (no token, no
// secret, no challenges) with its app.
func lineOf(d storage.Device) push.DeviceView {
	v := push.ViewOf(&d, true)
	v.App = d.App
	return v
}

// deviceStore is where the push devices commands read and delete: the
// running server's admin socket, or the database when no server runs.
type deviceStore interface {
	ListDevices(app string, f storage.DeviceFilter, cursor string, limit int) ([]storage.Device, string, error)
	Device(app, id string) (storage.Device, error)
	DeleteDevice(app, id string) (storage.Device, error)
}

var (
	_ deviceStore = (*admin.Client)(nil)
	_ deviceStore = (*storage.DB)(nil)
)

// withDevices runs fn on the admin socket, else on the database (offline
// true: fn audits its changes itself).
func (c *command) withDevices(fn func(st deviceStore, offline bool) int) int {
	if cl := c.adminClient(); cl != nil {
		defer cl.Close()
		return fn(cl, false)
	}
	return c.withDB(func(db *storage.DB) int { return fn(db, true) })
}

// appFlag adds --app, defaulting to the default app.
func (c *command) appFlag(fs *flag.FlagSet) *string {
	return fs.String("app", c.settings.DefaultAppID, "the app (default: SOCKUDO_DEFAULT_APP_ID)")
}

func (c *command) pushDevicesList(args []string) int {
	fs := c.flagSet("[--app id] [--user id] [--platform p] [--interest name] [--channel name] [--limit n] [--cursor c] [--json]",
		"List an app's push devices in device id order; --cursor continues after a page.")
	app := c.appFlag(fs)
	var f storage.DeviceFilter
	fs.StringVar(&f.UserID, "user", "", "only this user's devices")
	fs.StringVar(&f.Platform, "platform", "", "only apns, fcm or web devices")
	fs.StringVar(&f.Interest, "interest", "", "only devices with this interest")
	fs.StringVar(&f.Channel, "channel", "", "only devices subscribed to this channel")
	limit := fs.Int("limit", 100, "at most this many devices")
	cursor := fs.String("cursor", "", "the next_cursor a previous page printed")
	asJSON := fs.Bool("json", false, "print {items, next_cursor} as JSON")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	if *app == "" {
		return c.usagef("--app is required (no SOCKUDO_DEFAULT_APP_ID)")
	}
	return c.withDevices(func(db deviceStore, _ bool) int {
		page, next, err := db.ListDevices(*app, f, *cursor, *limit)
		if err != nil {
			return c.fail(err)
		}
		lines := make([]push.DeviceView, 0, len(page))
		for _, d := range page {
			lines = append(lines, lineOf(d))
		}
		if *asJSON {
			return c.printJSON(struct {
				Items      []push.DeviceView `json:"items"`
				NextCursor string            `json:"next_cursor,omitempty"`
			}{lines, next})
		}
		code := c.printTable("ID\tPLATFORM\tUSER\tTOKEN\tINTERESTS\tCHANNELS\tUPDATED", func(w io.Writer) {
			for _, l := range lines {
				fmt.Fprintf(w, "%s\t%s\t%s\t…%s\t%d\t%d\t%s\n", l.ID, l.Platform, dash(l.UserID), l.TokenLast6,
					l.InterestCount, len(l.Channels), l.UpdatedAt.Format(time.RFC3339))
			}
		})
		if code == 0 && next != "" {
			fmt.Fprintf(c.stdout, "more: --cursor %s\n", next)
		}
		return code
	})
}

// deviceArg parses flags and exactly one device id.
func (c *command) deviceArg(fs *flag.FlagSet, args []string) (id string, code int, done bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", 0, true
			}
			return "", 2, true
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) != 1 {
		return "", c.usagef("want one device id, got %q", pos), true
	}
	return pos[0], 0, false
}

func (c *command) pushDevicesShow(args []string) int {
	fs := c.flagSet("[--app id] <device> [--json]", "Print a push device as JSON (token as hash and last 6 characters).")
	app := c.appFlag(fs)
	_ = jsonFlag(fs, "print JSON (the only format)")
	id, code, done := c.deviceArg(fs, args)
	if done {
		return code
	}
	return c.withDevices(func(db deviceStore, _ bool) int {
		d, err := db.Device(*app, id)
		if err != nil {
			return c.failDevice(*app, id, err)
		}
		return c.printJSON(lineOf(d))
	})
}

func (c *command) pushDevicesDelete(args []string) int {
	fs := c.flagSet("[--app id] <device> [--json]", "Delete a push device; the audit log records it (reason cli).")
	app := c.appFlag(fs)
	asJSON := jsonFlag(fs, "print the deleted device as JSON")
	id, code, done := c.deviceArg(fs, args)
	if done {
		return code
	}
	return c.withDevices(func(st deviceStore, offline bool) int {
		d, err := st.DeleteDevice(*app, id)
		if err != nil {
			return c.failDevice(*app, id, err)
		}
		if offline {
			err = st.(*storage.DB).AppendAudit([]storage.AuditEntry{{Time: time.Now().UTC(), App: *app, Action: "push_device_deleted",
				UserID: d.UserID, Reason: "device=" + d.ID + " platform=" + d.Platform + " via=cli"}})
			if err != nil {
				return c.failf("deleted, but the audit entry failed: %v", err)
			}
		}
		if *asJSON {
			return c.printJSON(lineOf(d))
		}
		fmt.Fprintf(c.stdout, "deleted device %s of app %s\n", d.ID, *app)
		return 0
	})
}

func (c *command) failDevice(app, id string, err error) int {
	if errors.Is(err, storage.ErrNotFound) {
		return c.notFoundf("no device %q in app %q", id, app)
	}
	return c.fail(err)
}
