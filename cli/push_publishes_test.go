package cli

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/storage"
)

// TestPushPublishesCLI runs the publish and push dead-letter commands on
// the database and through a running server's admin socket: --json, the
// tables, cancel, and the exit codes.
func TestPushPublishesCLI(t *testing.T) {
	for _, mode := range []string{"database", "admin socket"} {
		t.Run(mode, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "sk") // short: unix socket paths are limited
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			env := map[string]string{"SOCKUDO_DB_PATH": filepath.Join(dir, "s.db"), "SOCKUDO_DEFAULT_APP_ID": "a1"}
			db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.PutApp(storage.App{ID: "a1", Key: "k1", Secret: "s1", Enabled: true}); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			pub, err := db.CreatePushPublish(storage.PushPublish{App: "a1", CreatedAt: now, SendAt: now.Add(time.Hour)},
				[]storage.PushDelivery{{DeviceID: "d1", Platform: storage.PlatformFCM}, {DeviceID: "d2", Platform: storage.PlatformAPNs}})
			if err != nil {
				t.Fatal(err)
			}
			if mode == "database" {
				env["SOCKUDO_ADMIN_SOCKET_ENABLED"] = "false"
				db.Close()
			} else {
				trail := func(e storage.PushAuditEntry) { _, _ = db.AppendPushAudit([]storage.PushAuditEntry{e}) }
				svc, err := push.New(push.Config{}, push.Deps{DB: db, Apps: noApps{}, Audit: syncRecorder{db}, Trail: trail})
				if err != nil {
					t.Fatal(err)
				}
				as := admin.NewServer(db, nil, nil)
				as.Push = svc.AdminHandler()
				ln, err := admin.Listen(env["SOCKUDO_DB_PATH"] + ".sock")
				if err != nil {
					t.Fatal(err)
				}
				hs := &http.Server{Handler: as.Handler(), ReadHeaderTimeout: time.Second}
				done := make(chan struct{})
				go func() { defer close(done); _ = hs.Serve(ln) }()
				t.Cleanup(func() { hs.Close(); <-done; db.Close() })
			}

			r := runCLI(t, env, "push", "publishes", "list")
			if r.code != 0 || !strings.Contains(r.stdout, pub.ID) || !strings.Contains(r.stdout, "scheduled") {
				t.Fatalf("list: %+v", r)
			}
			r = runCLI(t, env, "push", "publishes", "list", "--json", "--since", "1h")
			var page struct {
				Items []push.PublishView `json:"items"`
			}
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &page) != nil || len(page.Items) != 1 || page.Items[0].Counters.Planned != 2 {
				t.Fatalf("list --json: %+v", r)
			}
			var deliveries map[string]any
			r = runCLI(t, env, "push", "publishes", "deliveries", pub.ID, "--json")
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &deliveries) != nil {
				t.Fatalf("deliveries: %+v", r)
			}
			r = runCLI(t, env, "push", "publishes", "cancel", pub.ID, "--json")
			var cancelled push.PublishView
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &cancelled) != nil || cancelled.State != storage.PublishCancelled {
				t.Fatalf("cancel: %+v", r)
			}
			r = runCLI(t, env, "push", "publishes", "show", pub.ID)
			if r.code != 0 || !strings.Contains(r.stdout, `"state": "cancelled"`) {
				t.Fatalf("show: %+v", r)
			}
			r = runCLI(t, env, "push", "dead-letters", "list", "--json")
			if r.code != 0 || !strings.Contains(r.stdout, `"dead_letters"`) {
				t.Fatalf("dead-letters list: %+v", r)
			}
			r = runCLI(t, env, "push", "dead-letters", "replay", "--json")
			if r.code != 0 || !strings.Contains(r.stdout, `"replayed": 0`) {
				t.Fatalf("dead-letters replay: %+v", r)
			}
			wantLimits := 1 // offline: needs a running server
			if mode == "admin socket" {
				wantLimits = 0
			}
			if r := runCLI(t, env, "push", "limits", "--json"); r.code != wantLimits {
				t.Errorf("limits: %+v, want exit %d", r, wantLimits)
			}
			for _, tc := range []struct {
				args []string
				code int
			}{
				{[]string{"publishes", "show", "pub_nope"}, 3},
				{[]string{"publishes", "cancel", pub.ID}, 1}, // already finished: a conflict
				{[]string{"publishes", "list", "--app", "nope"}, 3},
				{[]string{"publishes", "list", "--state", "sleeping"}, 2},
				{[]string{"publishes", "list", "--since", "yesterday"}, 2},
				{[]string{"publishes", "show"}, 2},
				{[]string{"publishes", "frob"}, 2},
				{[]string{"dead-letters", "replay", "--id", "x"}, 2},
			} {
				r := runCLI(t, env, append([]string{"push"}, tc.args...)...)
				if r.code != tc.code || r.stdout != "" {
					t.Errorf("%v: %+v, want exit %d and no stdout", tc.args, r, tc.code)
				}
			}
			// The cancel is in the push audit trail, whose chain holds.
			r = runCLI(t, env, "audit", "verify", "--app", "a1", "--json")
			var reports []storage.PushAuditReport
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &reports) != nil || len(reports) != 1 || reports[0].Entries < 2 {
				t.Errorf("audit verify: %+v", r)
			}
			trail, err := func() ([]storage.PushAuditEntry, error) {
				if mode == "database" {
					db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
					if err != nil {
						return nil, err
					}
					defer db.Close()
					entries, _, err := db.PushAudit("a1", storage.PushAuditFilter{})
					return entries, err
				}
				entries, _, err := db.PushAudit("a1", storage.PushAuditFilter{})
				return entries, err
			}()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(auditText(trail), pub.ID) {
				t.Errorf("the cancel is not in the push audit trail: %+v", trail)
			}
		})
	}
}

func auditText(entries any) string {
	b, _ := json.Marshal(entries)
	return string(b)
}
