package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockudo/sockudo/console"
	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
	"github.com/sockudo/sockudo/webhooks"
)

type recordedRefusals struct {
	mu  sync.Mutex
	all []server.AuditRecord
}

func (r *recordedRefusals) Record(a server.AuditRecord) {
	r.mu.Lock()
	r.all = append(r.all, a)
	r.mu.Unlock()
}

// TestStartConsole: /console exists only with CONSOLE_ENABLED; a login is
// a change in the audit log, a refused one goes with the refusals.
func TestStartConsole(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		db, err := storage.Open(filepath.Join(t.TempDir(), "sockudo.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		cfg, err := loadConfig(map[string]string{"CONSOLE_TOKEN": "0123456789abcdef-token"})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Console.Enabled = enabled
		if err := ensureDefaultApp(db, cfg.DefaultApp(), slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		srv, err := server.New(cfg.ServerConfig(), db, nil)
		if err != nil {
			t.Fatal(err)
		}
		hooks, err := webhooks.New(cfg.WebhooksConfig(), db, nil)
		if err != nil {
			t.Fatal(err)
		}
		refusals := &recordedRefusals{}
		ctx, cancel := context.WithCancel(context.Background())
		var bg sync.WaitGroup
		con, err := startConsole(cfg, srv, hooks, consoleAudit{refusals, changeLog{db, nil}}, nil, nil, ctx, &bg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		login := func(token string) int {
			resp, err := http.Post(ts.URL+"/console/api/login", "application/json", strings.NewReader(`{"token":"`+token+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if !enabled {
			if con != nil || login("0123456789abcdef-token") != http.StatusNotFound {
				t.Fatal("the console answers while disabled")
			}
		} else {
			if login("0123456789abcdef-wrong") != http.StatusUnauthorized || login("0123456789abcdef-token") != http.StatusOK {
				t.Fatal("logins")
			}
			changes, err := db.Audit(storage.AuditFilter{Action: console.AuditLogin})
			if err != nil || len(changes) != 1 || changes[0].IP == "" {
				t.Fatalf("login change: %+v %v", changes, err)
			}
			refusals.mu.Lock()
			if len(refusals.all) != 1 || refusals.all[0].Action != console.AuditLoginRefused {
				t.Fatalf("refusals: %+v", refusals.all)
			}
			refusals.mu.Unlock()
			mfs, err := srv.Registry().Gather()
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, mf := range mfs {
				found = found || mf.GetName() == "sockudo_console_dropped_events_total"
			}
			if !found {
				t.Fatal("no sockudo_console_dropped_events_total")
			}
		}
		ts.Close()
		cancel()
		bg.Wait()
	}
}

// TestConsoleShowsPushPublishes wires the console, the push audit trail and
// the push service as main does: a publish shows in the console's stream
// when the API accepts it, and again with its counts when it finishes.
func TestConsoleShowsPushPublishes(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "sockudo.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	app := storage.App{ID: "a1", Key: "k1", Secret: "s1-secret", Enabled: true}
	if err := db.PutApp(app); err != nil {
		t.Fatal(err)
	}
	const deviceToken = "fcm-registration-token-0123456789"
	if _, _, err := db.PutDevice(storage.Device{ID: "d1", App: "a1", Platform: storage.PlatformFCM, Token: deviceToken,
		UserID: "user-42"}, storage.DeviceLimits{}, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(map[string]string{"CONSOLE_ENABLED": "true", "CONSOLE_TOKEN": "0123456789abcdef-token"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{}, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := webhooks.New(cfg.WebhooksConfig(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	t.Cleanup(func() { cancel(); bg.Wait() })
	log := slog.New(slog.DiscardHandler)
	con, err := startConsole(cfg, srv, hooks, consoleAudit{&recordedRefusals{}, changeLog{db, nil}}, nil, nil, ctx, &bg, log)
	if err != nil {
		t.Fatal(err)
	}
	trail := push.NewAuditTrail(db, time.Hour, log)
	bg.Add(1)
	go func() { defer bg.Done(); trail.Run(ctx) }()
	audit := storage.NewAuditWriter(db, storage.AuditWriterConfig{}, nil)
	svc, err := routePush(srv, push.Config{CredentialKey: bytes.Repeat([]byte{3}, 32)}, db, audit, pushEvents{hooks, con}, trail, log)
	if err != nil {
		t.Fatal(err)
	}
	bg.Add(1)
	go func() { defer bg.Done(); svc.Run(ctx) }()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	srv.MarkReady()

	// Log in and open the event stream.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Post(hs.URL+"/console/api/login", "application/json", strings.NewReader(`{"token":"0123456789abcdef-token"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = c.Get(hs.URL + "/console/api/events?app=a1")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %v %v", resp, err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// next waits for a push publish event whose detail holds want.
	next := func(want string) console.Event {
		t.Helper()
		timer := time.NewTimer(10 * time.Second)
		defer timer.Stop()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the stream ended before %q", want)
				}
				if !strings.HasPrefix(l, "data: ") {
					continue
				}
				var e console.Event
				if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &e); err != nil {
					t.Fatal(err)
				}
				if e.Kind == console.KindPush && strings.Contains(e.Detail, want) {
					return e
				}
			case <-timer.C:
				t.Fatalf("no push publish %q in the stream", want)
			}
		}
	}
	// ": open" comes first: the stream is registered.
	for l := range lines {
		if l == ": open" {
			break
		}
	}

	publish := func(body string) string {
		t.Helper()
		path := "/apps/a1/push/publishes/users"
		q := url.Values{}
		q.Set("auth_key", app.Key)
		q.Set("auth_timestamp", strconv.FormatInt(time.Now().Unix(), 10))
		q.Set("auth_version", "1.0")
		sum := md5.Sum([]byte(body))
		q.Set("body_md5", hex.EncodeToString(sum[:]))
		q.Set("auth_signature", protocol.Sign(app.Secret, protocol.RequestString("POST", path, q)))
		pr, err := http.Post(hs.URL+path+"?"+q.Encode(), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(pr.Body)
		pr.Body.Close()
		if pr.StatusCode != http.StatusAccepted {
			t.Fatalf("publish: %d %s", pr.StatusCode, answer)
		}
		var accepted struct {
			ID string `json:"publish_id"`
		}
		_ = json.Unmarshal(answer, &accepted)
		return accepted.ID
	}
	// A scheduled publish shows when accepted, long before it is sent.
	sendAt := time.Now().Add(time.Hour).Unix()
	scheduled := publish(`{"users":["user-42"],"notification":{"title":"Secret title"},"send_at":` + strconv.FormatInt(sendAt, 10) + `}`)
	later := next(scheduled + " accepted, scheduled: 1 device(s) planned")
	if !strings.Contains(later.Detail, "sending at") {
		t.Fatalf("scheduled: %+v", later)
	}
	// One to a user without devices is accepted and finishes at once.
	now := publish(`{"users":["user-7"],"notification":{"title":"Secret title"}}`)
	accepted := next(now + " accepted")
	finished := next(now + " finished")
	for _, e := range []console.Event{later, accepted, finished} {
		if e.App != "a1" || strings.Contains(e.Detail, "Secret title") || strings.Contains(e.Detail, "user-") ||
			strings.Contains(e.Detail, deviceToken) {
			t.Fatalf("event %+v", e)
		}
	}
	if !strings.Contains(finished.Detail, "0 planned, 0 sent, 0 failed") {
		t.Fatalf("finished: %+v", finished)
	}
}
