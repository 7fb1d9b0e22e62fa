package webhooks

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

const (
	testApp    = "app-id"
	testKey    = "app-key"
	testSecret = "app-secret"
)

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
	at     time.Time // the dispatcher's clock when it arrived, if fake
	Time   int64     `json:"time_ms"`
	Events []struct {
		Name              string  `json:"name"`
		Channel           string  `json:"channel"`
		Event             string  `json:"event"`
		Data              *string `json:"data"`
		SocketID          string  `json:"socket_id"`
		UserID            string  `json:"user_id"`
		SubscriptionCount *int    `json:"subscription_count"`
	} `json:"events"`
}

// names lists the request's events as "name channel".
func (r received) names() []string {
	var out []string
	for _, e := range r.Events {
		out = append(out, e.Name+" "+e.Channel)
	}
	return out
}

// receiver is an httptest server on 127.0.0.1 that records requests and
// answers with status (200 unless set).
type receiver struct {
	*httptest.Server
	reqs  chan received
	clock clock

	mu     sync.Mutex
	status int
	header http.Header
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{reqs: make(chan received, 10_000), status: 200, clock: realClock{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		got := received{header: req.Header.Clone(), body: body, at: r.clock.Now()}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("receiver: body is not JSON: %v: %s", err, body)
		}
		r.mu.Lock()
		status, hdr := r.status, r.header
		r.mu.Unlock()
		for k, v := range hdr {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		r.reqs <- got
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) respond(status int, header http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.header = status, header
}

// next waits for the next request.
func (r *receiver) next(t *testing.T) received {
	t.Helper()
	select {
	case got := <-r.reqs:
		return got
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a webhook request")
		return received{}
	}
}

// nextEvents waits for requests until n events arrived and returns them
// as "name channel".
func (r *receiver) nextEvents(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		out = append(out, r.next(t).names()...)
	}
	return out
}

// openDB opens a database in t.TempDir with apps stored.
func openDB(t *testing.T, apps ...storage.App) (*storage.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sockudo.db")
	db, err := storage.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		if err := db.PutApp(a); err != nil {
			t.Fatal(err)
		}
	}
	return db, path
}

func app(hooks ...storage.Webhook) storage.App {
	return storage.App{ID: testApp, Key: testKey, Secret: testSecret, Enabled: true, Webhooks: hooks}
}

// testConfig allows 127.0.0.1 and sends one event per request unless the
// test batches.
func testConfig() Config {
	return Config{AllowPrivateTargets: true, Batching: Batching{Disabled: true}}
}

type testOpts struct {
	clock *fakeClock
	log   *logBuffer
}

// startDispatcher builds and starts a dispatcher on db; cleanup closes it
// (and the database, after it).
func startDispatcher(t *testing.T, cfg Config, db *storage.DB, o testOpts) *Dispatcher {
	t.Helper()
	d := newDispatcher(t, cfg, db, o)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

func newDispatcher(t *testing.T, cfg Config, db *storage.DB, o testOpts) *Dispatcher {
	t.Helper()
	var log *slog.Logger
	if o.log != nil {
		log = slog.New(slog.NewTextHandler(o.log, nil))
	}
	d, err := New(cfg, db, log)
	if err != nil {
		t.Fatal(err)
	}
	if o.clock != nil {
		d.clock, d.warn.clock = o.clock, o.clock
		d.jitter = func() float64 { return 0 }
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		_ = db.Close()
	})
	return d
}

// logBuffer collects log output written from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond until it holds, failing after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling state, not waiting for an event
	}
}

func clientEvent(channel, data string) Event {
	return Event{App: testApp, Name: ClientEvent, Channel: channel, Event: "client-x", Data: data, SocketID: "1.2"}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
