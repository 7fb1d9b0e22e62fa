package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/storage"
	"github.com/sockudo/sockudo/webhooks"
)

// jsonCase is one command run of TestEveryCommandJSONAndExitCodes: with
// code 0 and --json, stdout must be exactly one JSON document (and want,
// when set, must hold of it); with another code stdout must be empty and
// stderr must say why.
type jsonCase struct {
	args []string
	code int
	want func(t *testing.T, v any)
}

// field returns v[key] of a JSON object.
func field(v any, key string) any {
	m, _ := v.(map[string]any)
	return m[key]
}

func wantField(key string, val any) func(*testing.T, any) {
	return func(t *testing.T, v any) {
		t.Helper()
		if got := field(v, key); got != val {
			t.Errorf("%s = %v, want %v", key, got, val)
		}
	}
}

func wantLen(n int) func(*testing.T, any) {
	return func(t *testing.T, v any) {
		t.Helper()
		if l, ok := v.([]any); !ok || len(l) != n {
			t.Errorf("want a JSON array of %d, got %v", n, v)
		}
	}
}

// seedCLI fills a database with an app a1, a push device of a1 and a
// dead letter of a1, and returns the device id.
func seedCLI(t *testing.T, path string) string {
	t.Helper()
	db, err := storage.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PutApp(storage.App{ID: "a1", Key: "k1", Secret: "0123456789abcdef0123456789abcdef", Enabled: true,
		Webhooks: []storage.Webhook{{URL: "https://x.example.com/hook"}}}); err != nil {
		t.Fatal(err)
	}
	d, _, err := db.PutDevice(storage.Device{App: "a1", Platform: storage.PlatformFCM, Token: "tok-0123456789"},
		storage.DeviceLimits{}, time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := db.EnqueueWebhooks([]storage.WebhookEntry{{App: "a1", URL: "https://x.example.com/hook",
		Event: []byte(`{"name":"channel_occupied","channel":"c"}`), CreatedAt: now, EnqueuedAt: now}}); err != nil {
		t.Fatal(err)
	}
	head, _ := db.WebhookHead("a1", "https://x.example.com/hook", 10)
	if _, err := db.DeadLetterWebhooks(head, "status 500", now, 0); err != nil {
		t.Fatal(err)
	}
	return d.ID
}

// dbDeadLetters serves the admin socket's dead letters from the database,
// as the running dispatcher does.
type dbDeadLetters struct{ db *storage.DB }

func (d dbDeadLetters) DeadLetters(app string, limit int) ([]storage.DeadLetter, error) {
	return d.db.DeadLetters(app, limit)
}

func (d dbDeadLetters) Replay(app string, ids []uint64) (int, int, error) {
	all, err := d.db.Apps()
	if err != nil {
		return 0, 0, err
	}
	queues, skipped, err := d.db.ReplayDeadLetters(app, ids, time.Now(), webhooks.Configured(all))
	n := 0
	for _, q := range queues {
		n += q.Len
	}
	return n, skipped, err
}

// fakeQueues stands in for the running dispatcher's queues.
type fakeQueues struct{}

func (fakeQueues) WebhookQueues(app string) ([]admin.WebhookQueue, error) {
	return []admin.WebhookQueue{{App: "a1", URL: "https://x.example.com/hook", Pending: 2, Failures: 1}}, nil
}

// TestEveryCommandJSONAndExitCodes runs every admin operation with --json,
// offline (the database) and through a running server's admin socket, and
// checks the exit codes: 0 ok, 1 failure, 2 usage or invalid input, 3 not
// found.
func TestEveryCommandJSONAndExitCodes(t *testing.T) {
	for _, mode := range []string{"database", "admin socket"} {
		t.Run(mode, func(t *testing.T) {
			env := testEnv(t)
			device := seedCLI(t, env["SOCKUDO_DB_PATH"])
			if mode == "database" {
				env["SOCKUDO_ADMIN_SOCKET_ENABLED"] = "false"
			} else {
				db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
				if err != nil {
					t.Fatal(err)
				}
				ln, err := admin.Listen(env["SOCKUDO_DB_PATH"] + ".sock")
				if err != nil {
					t.Fatal(err)
				}
				as := admin.NewServer(db, nil, nil)
				as.PushDevices = db
				as.DeadLetters = dbDeadLetters{db}
				as.WebhookQueues = fakeQueues{}
				hs := &http.Server{Handler: as.Handler()}
				done := make(chan struct{})
				go func() { defer close(done); _ = hs.Serve(ln) }()
				t.Cleanup(func() { hs.Close(); <-done; db.Close() })
			}
			cases := []jsonCase{
				{[]string{"version", "--json"}, 0, wantField("version", "dev")},
				{[]string{"apps", "list", "--json"}, 0, wantLen(1)},
				{[]string{"apps", "show", "a1", "--json"}, 0, wantField("secret", hiddenSecret)},
				{[]string{"apps", "show", "nope", "--json"}, 3, nil},
				{[]string{"apps", "show", "--json"}, 2, nil},
				{[]string{"apps", "create", "--id", "a2", "--json"}, 0, wantField("id", "a2")},
				{[]string{"apps", "create", "--id", "a2", "--json"}, 1, nil}, // exists
				{[]string{"apps", "create", "--key", "a/b", "--json"}, 2, nil},
				{[]string{"apps", "update", "a2", "--max-connections", "5", "--json"}, 0, wantField("max_connections", float64(5))},
				{[]string{"apps", "update", "a2", "--json"}, 0, wantField("id", "a2")}, // unchanged: the app as it is
				{[]string{"apps", "update", "nope", "--enabled=false", "--json"}, 3, nil},
				{[]string{"apps", "rotate-secret", "a2", "--json"}, 0, wantField("id", "a2")},
				{[]string{"apps", "rotate-secret", "nope", "--json"}, 3, nil},
				{[]string{"apps", "beams-key", "generate", "a2", "--json"}, 0, wantField("instance_id", "a2")},
				{[]string{"apps", "beams-key", "generate", "a2", "--json"}, 2, nil}, // already has one: rotate
				{[]string{"apps", "beams-key", "revoke", "nope", "--json"}, 3, nil},
				{[]string{"apps", "beams-key", "frob", "a2", "--json"}, 2, nil},
				{[]string{"apps", "delete", "a2", "--json"}, 0, wantField("deleted", true)},
				{[]string{"apps", "delete", "a2", "--json"}, 3, nil},
				{[]string{"apps", "frob"}, 2, nil},
				{[]string{"audit", "list", "--json"}, 0, nil},
				{[]string{"audit", "list", "--since", "yesterday", "--json"}, 2, nil},
				{[]string{"audit", "verify", "--json"}, 0, nil},
				{[]string{"webhooks", "dead-letters", "list", "--json"}, 0, wantLen(1)},
				{[]string{"webhooks", "dead-letters", "replay", "--json"}, 0, wantField("replayed", float64(1))},
				{[]string{"webhooks", "dead-letters", "replay", "--id", "x"}, 2, nil},
				{[]string{"webhooks", "frob"}, 2, nil},
				{[]string{"webhooks", "queues", "--json"}, 0, func(t *testing.T, v any) {
					if _, ok := v.([]any); !ok {
						t.Errorf("want an array, got %v", v)
					}
				}},
				{[]string{"webhooks", "queues", "x"}, 2, nil},
				{[]string{"push", "devices", "list", "--app", "a1", "--json"}, 0, func(t *testing.T, v any) {
					if items, _ := field(v, "items").([]any); len(items) != 1 {
						t.Errorf("items %v", v)
					}
				}},
				{[]string{"push", "devices", "show", "--app", "a1", device, "--json"}, 0, wantField("id", device)},
				{[]string{"push", "devices", "show", "--app", "a1", "nope", "--json"}, 3, nil},
				{[]string{"push", "devices", "delete", "--app", "a1", device, "--json"}, 0, wantField("id", device)},
				{[]string{"push", "devices", "delete", "--app", "a1", device, "--json"}, 3, nil},
				{[]string{"push", "devices", "list", "--app", ""}, 2, nil},
				{[]string{"frob"}, 2, nil},
			}
			for _, tc := range cases {
				r := runCLI(t, env, tc.args...)
				name := strings.Join(tc.args, " ")
				if r.code != tc.code {
					t.Errorf("%s: exit %d, want %d\nstdout %s\nstderr %s", name, r.code, tc.code, r.stdout, r.stderr)
					continue
				}
				if tc.code != 0 {
					if r.stdout != "" || r.stderr == "" {
						t.Errorf("%s: exit %d printed stdout %q, stderr %q", name, r.code, r.stdout, r.stderr)
					}
					continue
				}
				var v any
				dec := json.NewDecoder(strings.NewReader(r.stdout))
				if err := dec.Decode(&v); err != nil || dec.More() {
					t.Errorf("%s: stdout is not one JSON document (%v):\n%s", name, err, r.stdout)
					continue
				}
				if tc.want != nil {
					tc.want(t, v)
				}
			}
		})
	}
}

// TestPushCredentialsJSON runs the credential commands with --json on the
// database: metadata only, and the exit codes of refusals.
func TestPushCredentialsJSON(t *testing.T) {
	env := testEnv(t)
	env["SOCKUDO_ADMIN_SOCKET_ENABLED"] = "false"
	seedCLI(t, env["SOCKUDO_DB_PATH"])
	key := strings.Repeat("k", 32)
	cred := func(args ...string) cliResult {
		return runPush(t, env, key, append([]string{"push", "credentials"}, args...)...)
	}
	r := cred("generate-vapid", "--app", "a1", "--subject", "mailto:ops@example.com", "--json")
	var v map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v["vapid_public_key"] == nil ||
		strings.Contains(r.stdout, "private") {
		t.Fatalf("generate-vapid --json: %+v", r)
	}
	// Offline changes enter the push audit trail too.
	r = runCLI(t, env, "audit", "verify", "--app", "a1", "--json")
	var reports []storage.PushAuditReport
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &reports) != nil || len(reports) != 1 || reports[0].Entries < 1 {
		t.Fatalf("audit verify after an offline credential change: %+v", r)
	}
	for _, tc := range []struct {
		args []string
		code int
		key  string
	}{
		{[]string{"list", "--app", "a1", "--json"}, 0, ""},
		{[]string{"validate", "webpush", "--app", "a1", "--json"}, 0, "ok"},
		{[]string{"reseal", "--json"}, 0, "resealed"},
		{[]string{"revoke", "webpush", "--app", "a1", "--json"}, 0, "revoked"},
		{[]string{"revoke", "webpush", "--app", "a1", "--version", "7", "--json"}, 3, ""},
		{[]string{"list", "--app", "nope", "--json"}, 3, ""},
		{[]string{"put", "webpush", "--app", "a1", "--json"}, 2, ""},
	} {
		r := cred(tc.args...)
		if r.code != tc.code {
			t.Errorf("%v: exit %d, want %d: %s", tc.args, r.code, tc.code, r.stderr)
			continue
		}
		if tc.code != 0 {
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Errorf("%v: not JSON: %s", tc.args, r.stdout)
		} else if tc.key != "" && field(v, tc.key) == nil {
			t.Errorf("%v: no %q in %s", tc.args, tc.key, r.stdout)
		}
	}
}
