package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sockudo/sockudo/console"
	"github.com/sockudo/sockudo/server"
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
