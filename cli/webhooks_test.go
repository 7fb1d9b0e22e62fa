package cli

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/storage"
)

func TestAppsWebhooksFlag(t *testing.T) {
	env := testEnv(t)
	env["SOCKUDO_ADMIN_SOCKET_ENABLED"] = "false"
	hooks := `[{"url":"https://api.example.com/pusher","event_types":["member_added"],"filter":{"channel_prefix":"presence-"}}]`
	r := runCLI(t, env, "apps", "create", "--id", "w", "--webhooks", hooks)
	if r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	want := []storage.Webhook{{URL: "https://api.example.com/pusher", EventTypes: []string{"member_added"},
		Filter: &storage.WebhookFilter{ChannelPrefix: "presence-"}}}
	if got := decodeApp(t, r.stdout).Webhooks; !reflect.DeepEqual(got, want) {
		t.Fatalf("created webhooks %+v", got)
	}

	// update without --webhooks keeps them; --webhooks '' removes them.
	if r := runCLI(t, env, "apps", "update", "w", "--max-connections", "5"); r.code != 0 ||
		!reflect.DeepEqual(decodeApp(t, r.stdout).Webhooks, want) {
		t.Fatalf("update kept webhooks? %+v", r)
	}
	if r := runCLI(t, env, "apps", "update", "w", "--webhooks", ""); r.code != 0 || decodeApp(t, r.stdout).Webhooks != nil {
		t.Fatalf("update --webhooks '': %+v", r)
	}

	for _, bad := range []string{`[{"url":"ftp://x"}]`, `{"url":"https://x"}`, `[{"url":"https://x","event_types":["nope"]}]`} {
		r := runCLI(t, env, "apps", "update", "w", "--webhooks", bad)
		if r.code != 2 || !strings.Contains(r.stderr, "-webhooks") {
			t.Errorf("--webhooks %s: %+v", bad, r)
		}
	}
}

func TestWebhooksDeadLettersCLI(t *testing.T) {
	env := testEnv(t)
	db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	kept := storage.App{ID: "a", Key: "ka", Secret: "s", Webhooks: []storage.Webhook{{URL: "https://x/hook?token=t"}}}
	if err := db.PutApp(kept); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	entries := []storage.WebhookEntry{
		{App: "a", URL: "https://x/hook?token=t", Event: []byte(`{"name":"channel_occupied","channel":"c1"}`), CreatedAt: now, EnqueuedAt: now},
		{App: "a", URL: "https://x/hook?token=t", Event: []byte(`{"name":"channel_vacated","channel":"c1"}`), CreatedAt: now, EnqueuedAt: now},
		{App: "a", URL: "https://gone/", Event: []byte(`{"name":"cache_miss","channel":"cache-c"}`), CreatedAt: now, EnqueuedAt: now},
	}
	if err := db.EnqueueWebhooks(entries); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{"https://x/hook?token=t", "https://gone/"} {
		head, _ := db.WebhookHead("a", url, 10)
		if _, err := db.DeadLetterWebhooks(head, "status 410 Gone", now, 0); err != nil {
			t.Fatal(err)
		}
	}
	_ = db.Close()

	r := runCLI(t, env, "webhooks", "dead-letters", "list")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 4 || !strings.Contains(r.stdout, "channel_vacated c1") ||
		!strings.Contains(r.stdout, "status 410 Gone") {
		t.Fatalf("list: %+v", r)
	}
	if strings.Contains(r.stdout, "token=t") {
		t.Errorf("the table shows the URL's query:\n%s", r.stdout)
	}
	r = runCLI(t, env, "webhooks", "dead-letters", "list", "--json", "--app", "a", "--limit", "1")
	var dead []storage.DeadLetter
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &dead) != nil || len(dead) != 1 || dead[0].URL != "https://x/hook?token=t" {
		t.Fatalf("list --json: %+v", r)
	}

	r = runCLI(t, env, "webhooks", "dead-letters", "replay", "--id", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "Replayed 1 dead letters") {
		t.Fatalf("replay --id 1: %+v", r)
	}
	r = runCLI(t, env, "webhooks", "dead-letters", "replay", "--app", "a")
	if r.code != 0 || !strings.Contains(r.stdout, "Replayed 1 dead letters") || !strings.Contains(r.stdout, "Skipped 1") {
		t.Fatalf("replay --app a: %+v", r)
	}
	db, err = storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := db.WebhookHead("a", "https://x/hook?token=t", 10)
	left, _ := db.DeadLetters("", 0)
	_ = db.Close()
	if len(head) != 2 || len(left) != 1 || left[0].URL != "https://gone/" {
		t.Fatalf("queued %d, dead letters left %+v", len(head), left)
	}

	for _, args := range [][]string{{"webhooks"}, {"webhooks", "dead-letters"}, {"webhooks", "nope", "list"},
		{"webhooks", "dead-letters", "replay", "--id", "x"}} {
		if r := runCLI(t, env, args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, r.code, r.stderr)
		}
	}
	if r := runCLI(t, env, "webhooks", "-h"); r.code != 0 || !strings.Contains(r.stdout, "dead-letters") {
		t.Errorf("webhooks -h: %+v", r)
	}
}

func TestWebhooksDeadLettersLocked(t *testing.T) {
	shortLockTimeout(t)
	env := testEnv(t)
	db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := runCLI(t, env, "webhooks", "dead-letters", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "a server is running") || !strings.Contains(r.stderr, "webhooks/dead_letters") {
		t.Fatalf("locked: %+v", r)
	}
}

// TestWebhookQueuesCLI prints the running server's queues (through the
// admin socket) and, with no server, what waits in the database.
func TestWebhookQueuesCLI(t *testing.T) {
	env := testEnv(t)
	seedCLI(t, env["SOCKUDO_DB_PATH"])
	// Offline: the seeded entry became a dead letter, so nothing waits.
	env["SOCKUDO_ADMIN_SOCKET_ENABLED"] = "false"
	if r := runCLI(t, env, "webhooks", "queues"); r.code != 0 || !strings.HasPrefix(r.stdout, "APP") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("offline: %+v", r)
	}
	delete(env, "SOCKUDO_ADMIN_SOCKET_ENABLED")
	db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := admin.Listen(env["SOCKUDO_DB_PATH"] + ".sock")
	if err != nil {
		t.Fatal(err)
	}
	as := admin.NewServer(db, nil, nil)
	as.WebhookQueues = fakeQueues{}
	hs := &http.Server{Handler: as.Handler()}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close(); <-done; db.Close() })
	r := runCLI(t, env, "webhooks", "queues")
	if r.code != 0 || !strings.Contains(r.stdout, "https://x.example.com/hook") || !regexp.MustCompile(`a1\s+\S+\s+2\s+1\s+now`).MatchString(r.stdout) {
		t.Fatalf("through the admin socket: %+v", r)
	}
}
