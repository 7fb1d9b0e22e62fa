package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

func TestPushDevicesCLI(t *testing.T) {
	env := testEnv(t)
	env["SOCKUDO_DEFAULT_APP_ID"] = "a"
	db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token := "fcm-token-that-must-not-be-printed-123456"
	d, _, err := db.PutDevice(storage.Device{App: "a", Platform: storage.PlatformFCM, Token: token, UserID: "u1",
		SecretHash: storage.TokenHash("s")}, storage.DeviceLimits{}, now, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.PutDevice(storage.Device{App: "a", Platform: storage.PlatformAPNs, Token: "abcdef0123"}, storage.DeviceLimits{}, now, false); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, env, "push", "devices", "list")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, d.ID) {
		t.Fatalf("list: %+v", r)
	}
	r = runCLI(t, env, "push", "devices", "list", "--user", "u1", "--json")
	var page struct{ Items []map[string]any }
	if err := json.Unmarshal([]byte(r.stdout), &page); r.code != 0 || err != nil || len(page.Items) != 1 || page.Items[0]["id"] != d.ID {
		t.Fatalf("list --user: %+v", r)
	}
	r = runCLI(t, env, "push", "devices", "show", d.ID)
	if r.code != 0 || !strings.Contains(r.stdout, `"token_last6": "123456"`) || strings.Contains(r.stdout, token) ||
		strings.Contains(r.stdout, "secret") {
		t.Fatalf("show: %+v", r)
	}
	r = runCLI(t, env, "push", "devices", "list", "--limit", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "more: --cursor ") {
		t.Fatalf("list --limit 1: %+v", r)
	}
	if r := runCLI(t, env, "push", "devices", "show"); r.code != 2 || !strings.Contains(r.stderr, "device id") {
		t.Fatalf("show without id: %+v", r)
	}
	if r := runCLI(t, env, "push", "devices", "delete", "--app", "a", d.ID); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	if r := runCLI(t, env, "push", "devices", "show", d.ID); r.code != 3 || !strings.Contains(r.stderr, "no device") {
		t.Fatalf("show deleted: %+v", r)
	}
	r = runCLI(t, env, "audit", "list", "--action", "push_device_deleted", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, d.ID) {
		t.Fatalf("audit: %+v", r)
	}
	if r := runCLI(t, env, "push", "nope"); r.code != 2 {
		t.Fatalf("push nope: %+v", r)
	}
}
