package console

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/storage"
)

const (
	testToken   = "operator-token-0123456789"
	testSecret  = "s3cret-of-app-one-XYZ"
	testSecret2 = "s3cret-of-app-two-XYZ"
	receiverTok = "receiver-token-in-url-QQQ"
)

type memStore struct{ apps []storage.App }

func (m *memStore) AppRecords() ([]storage.AppRecord, error) { return storage.NewAppRecords(m.apps...) }

func (m *memStore) Ping() error { return nil }

type recAudit struct {
	mu  sync.Mutex
	all []server.AuditRecord
}

func (a *recAudit) Record(r server.AuditRecord) {
	a.mu.Lock()
	a.all = append(a.all, r)
	a.mu.Unlock()
}

func (a *recAudit) has(action, app string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.all {
		if r.Action == action && r.App == app {
			return true
		}
	}
	return false
}

type fakeDead struct {
	mu       sync.Mutex
	replayed []uint64
}

func (f *fakeDead) DeadLetters(app string, limit int) ([]storage.DeadLetter, error) {
	return []storage.DeadLetter{{ID: 7, App: app, URL: "https://user:" + receiverTok + "@hooks.example/x?token=" + receiverTok,
		Event: json.RawMessage(`{"name":"channel_occupied","channel":"chat"}`), Attempts: 1, Reason: "status 500", DeadAt: time.Now()}}, nil
}

func (f *fakeDead) Replay(app string, ids []uint64) (int, int, error) {
	f.mu.Lock()
	f.replayed = append(f.replayed, ids...)
	f.mu.Unlock()
	return 1, 0, nil
}

// recorder keeps every response the console sent, to scan for secrets.
type recorder struct {
	mu     sync.Mutex
	bodies [][]byte
}

type recWriter struct {
	http.ResponseWriter
	buf *bytes.Buffer
}

func (w recWriter) Write(b []byte) (int, error) { w.buf.Write(b); return w.ResponseWriter.Write(b) }
func (w recWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (rec *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := &bytes.Buffer{}
		h.ServeHTTP(recWriter{w, buf}, r)
		var head bytes.Buffer
		_ = w.Header().Write(&head)
		rec.mu.Lock()
		rec.bodies = append(rec.bodies, append(head.Bytes(), buf.Bytes()...))
		rec.mu.Unlock()
	})
}

type env struct {
	t     *testing.T
	con   *Console
	srv   *server.Server
	url   string
	audit *recAudit
	dead  *fakeDead
	rec   *recorder
}

func newEnv(t *testing.T, cfg Config, login ratelimit.Limiter) *env {
	t.Helper()
	return newEnvDeps(t, cfg, login, nil)
}

// newEnvDeps is newEnv with deps adjusting the console's Deps (nil: none).
func newEnvDeps(t *testing.T, cfg Config, login ratelimit.Limiter, deps func(*Deps)) *env {
	t.Helper()
	apps := []storage.App{
		{ID: "one", Key: "key-one", Secret: testSecret, Enabled: true, EnableClientMessages: true},
		{ID: "two", Key: "key-two", Secret: testSecret2, Enabled: true},
	}
	srv, err := server.New(server.Config{}, &memStore{apps}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	e := &env{t: t, srv: srv, audit: &recAudit{}, dead: &fakeDead{}, rec: &recorder{}}
	d := Deps{Server: srv, DeadLetters: e.dead, Audit: e.audit, Login: login,
		Watch: func(on bool) {
			if on {
				srv.SetObserver(e.con)
			} else {
				srv.SetObserver(nil)
			}
		}}
	if deps != nil {
		deps(&d)
	}
	e.con, err = New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle("/console", e.rec.wrap(e.con.Handler()))
	srv.Handle("/console/", e.rec.wrap(e.con.Handler()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	srv.MarkReady()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	e.url = "http://" + ln.Addr().String()
	return e
}

// browser is a client with a cookie jar and the session's CSRF token.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (b *browser) do(method, path string, body any, csrf bool) (int, map[string]any, *http.Response) {
	b.e.t.Helper()
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, b.e.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if csrf {
		req.Header.Set(csrfHeader, b.csrf)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, resp
}

func (b *browser) login(body any) (int, map[string]any, *http.Response) {
	code, m, resp := b.do("POST", "/console/api/login", body, false)
	if code == 200 {
		b.csrf, _ = m["csrf"].(string)
	}
	return code, m, resp
}

func TestTokenLogin(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	b := e.browser()
	if code, _, _ := b.do("GET", "/console/api/session", nil, false); code != 401 {
		t.Fatalf("no session: %d", code)
	}
	if code, _, _ := b.login(map[string]string{"token": "wrong-token-0123456789"}); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if !e.audit.has(AuditLoginRefused, "") {
		t.Fatal("refused login not audited")
	}
	code, m, resp := b.login(map[string]string{"token": testToken})
	if code != 200 {
		t.Fatalf("login: %d", code)
	}
	if apps := m["apps"].([]any); len(apps) != 2 || m["operator"] != true {
		t.Fatalf("operator session: %v", m)
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Secure || ck[0].Path != "/console" ||
		len(ck[0].Value) < 40 {
		t.Fatalf("cookie: %+v", ck)
	}
	if !e.audit.has(AuditLogin, "") {
		t.Fatal("login not audited")
	}
	for _, app := range []string{"one", "two"} {
		if code, _, _ := b.do("GET", "/console/api/stats?app="+app, nil, false); code != 200 {
			t.Fatalf("stats %s: %d", app, code)
		}
	}
	// Logout needs the CSRF token, then ends the session.
	if code, _, _ := b.do("POST", "/console/api/logout", map[string]any{}, false); code != 403 {
		t.Fatalf("logout without CSRF: %d", code)
	}
	if code, _, _ := b.do("POST", "/console/api/logout", map[string]any{}, true); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	if !e.audit.has(AuditLogout, "") {
		t.Fatal("logout not audited")
	}
	if code, _, _ := b.do("GET", "/console/api/stats?app=one", nil, false); code != 401 {
		t.Fatalf("after logout: %d", code)
	}
}

func TestSecureCookie(t *testing.T) {
	e := newEnv(t, Config{Secure: true}, nil)
	_, _, resp := e.browser().login(map[string]string{"token": testToken})
	if ck := resp.Cookies(); len(ck) != 1 || !ck[0].Secure {
		t.Fatalf("cookie: %+v", ck)
	}
}

func TestAppLoginSeesOnlyItsApp(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	b := e.browser()
	for _, bad := range []map[string]string{
		{"key": "key-one", "secret": testSecret2},
		{"key": "key-nope", "secret": testSecret},
		{"key": "key-one", "secret": ""},
		{"token": ""},
	} {
		if code, _, _ := b.login(bad); code != 401 {
			t.Fatalf("%v: %d", bad, code)
		}
	}
	if !e.audit.has(AuditLoginRefused, "one") {
		t.Fatal("refused app login not audited with its app")
	}
	code, m, _ := b.login(map[string]string{"key": "key-one", "secret": testSecret})
	if code != 200 || m["operator"] != false || len(m["apps"].([]any)) != 1 || m["apps"].([]any)[0] != "one" {
		t.Fatalf("app login: %d %v", code, m)
	}
	if !e.audit.has(AuditLogin, "one") {
		t.Fatal("app login not audited")
	}
	for _, path := range []string{"/console/api/stats?app=two", "/console/api/channels?app=two",
		"/console/api/channel?app=two&name=x", "/console/api/dead_letters?app=two", "/console/api/events?app=two"} {
		if code, _, _ := b.do("GET", path, nil, false); code != 403 {
			t.Fatalf("%s: %d", path, code)
		}
	}
	for path, body := range map[string]any{
		"/console/api/trigger":             map[string]any{"app": "two", "channel": "c", "event": "e"},
		"/console/api/dead_letters/replay": map[string]any{"app": "two"},
	} {
		if code, _, _ := b.do("POST", path, body, true); code != 403 {
			t.Fatalf("%s: %d", path, code)
		}
	}
	if code, _, _ := b.do("GET", "/console/api/stats?app=one", nil, false); code != 200 {
		t.Fatalf("own app: %d", code)
	}
}

func TestLoginRateLimited(t *testing.T) {
	lim := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 3, Window: time.Minute})
	e := newEnv(t, Config{}, lim)
	b := e.browser()
	for range 3 {
		if code, _, _ := b.login(map[string]string{"token": "wrong-token-0123456789"}); code != 401 {
			t.Fatalf("wrong token: %d", code)
		}
	}
	code, _, resp := b.login(map[string]string{"token": testToken})
	if code != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("4th login: %d retry-after %q", code, resp.Header.Get("Retry-After"))
	}
	if !e.audit.has(AuditLoginLimited, "") {
		t.Fatal("rate-limited login not audited")
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	b := e.browser()
	b.login(map[string]string{"token": testToken})
	trig := map[string]any{"app": "one", "channel": "chat", "event": "hello", "data": "{}"}
	token := b.csrf
	b.csrf = ""
	if code, _, _ := b.do("POST", "/console/api/trigger", trig, true); code != 403 {
		t.Fatalf("no token: %d", code)
	}
	b.csrf = "forged"
	if code, _, _ := b.do("POST", "/console/api/trigger", trig, true); code != 403 {
		t.Fatalf("wrong token: %d", code)
	}
	if !e.audit.has(AuditCSRFRefused, "") {
		t.Fatal("CSRF refusal not audited")
	}
	// Another session's token is no good either.
	other := e.browser()
	other.login(map[string]string{"token": testToken})
	b.csrf = other.csrf
	if code, _, _ := b.do("POST", "/console/api/trigger", trig, true); code != 403 {
		t.Fatalf("other session's token: %d", code)
	}
	b.csrf = token
	// A browser-marked cross-site request is refused even with the token,
	// and so is a cross-site login.
	for _, path := range []string{"/console/api/trigger", "/console/api/login"} {
		j, _ := json.Marshal(trig)
		req, _ := http.NewRequest("POST", e.url+path, bytes.NewReader(j))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(csrfHeader, token)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Fatalf("cross-site %s: %d", path, resp.StatusCode)
		}
	}
	// A form post (what a cross-site form could send) is refused.
	req, _ := http.NewRequest("POST", e.url+"/console/api/trigger", strings.NewReader(url.Values{"app": {"one"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(csrfHeader, token)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("form post: %d", resp.StatusCode)
	}
	if code, m, _ := b.do("POST", "/console/api/trigger", trig, true); code != 200 {
		t.Fatalf("trigger: %d %v", code, m)
	}
	if !e.audit.has(AuditTrigger, "one") {
		t.Fatal("trigger not audited")
	}
	if code, m, _ := b.do("POST", "/console/api/dead_letters/replay", map[string]any{"app": "one", "ids": []int{7}}, true); code != 200 || m["replayed"] != 1.0 {
		t.Fatalf("replay: %d %v", code, m)
	}
	if !e.audit.has(AuditReplay, "one") {
		t.Fatal("replay not audited")
	}
}

func TestEveryRouteNeedsASession(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	b := e.browser()
	for _, path := range []string{"/console/api/session", "/console/api/stats?app=one", "/console/api/events?app=one",
		"/console/api/channels?app=one", "/console/api/channel?app=one&name=x", "/console/api/dead_letters?app=one"} {
		if code, _, _ := b.do("GET", path, nil, false); code != 401 {
			t.Fatalf("%s: %d", path, code)
		}
	}
	for _, path := range []string{"/console/api/logout", "/console/api/trigger", "/console/api/dead_letters/replay"} {
		if code, _, _ := b.do("POST", path, map[string]any{}, true); code != 401 {
			t.Fatalf("%s: %d", path, code)
		}
	}
	// The page itself is public: it is only the login form and the script.
	for _, path := range []string{"/console", "/console/", "/console/app.js", "/console/app.css"} {
		resp, err := b.c.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") == "" {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
}

// TestNoSecretInAnyResponse drives every route, as the operator and as an
// app, and scans all the console answered for the secrets, the token and
// the receiver's URL credentials.
func TestNoSecretInAnyResponse(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	for _, creds := range []map[string]string{{"token": testToken}, {"key": "key-one", "secret": testSecret}} {
		b := e.browser()
		b.login(map[string]string{"token": "wrong-token-0123456789"})
		b.login(map[string]string{"key": "key-one", "secret": testSecret2})
		if code, _, _ := b.login(creds); code != 200 {
			t.Fatalf("login %v: %d", creds, code)
		}
		events := openStream(t, b, "one")
		for _, path := range []string{"/console", "/console/app.js", "/console/api/session", "/console/api/stats?app=one",
			"/console/api/channels?app=one", "/console/api/channel?app=one&name=chat", "/console/api/dead_letters?app=one",
			"/console/api/stats?app=two", "/console/nope"} {
			b.do("GET", path, nil, false)
		}
		b.do("POST", "/console/api/trigger", map[string]any{"app": "one", "channel": "chat", "event": "hi", "data": "{}"}, true)
		b.do("POST", "/console/api/trigger", map[string]any{"app": "one", "channel": "bad name", "event": "hi"}, true)
		b.do("POST", "/console/api/dead_letters/replay", map[string]any{"app": "one", "ids": []int{}}, true)
		events.next(t, "api_event")
		events.close()
		b.do("POST", "/console/api/logout", map[string]any{}, true)
	}
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	if len(e.rec.bodies) < 20 {
		t.Fatalf("only %d responses recorded", len(e.rec.bodies))
	}
	for _, body := range e.rec.bodies {
		for _, secret := range []string{testSecret, testSecret2, testToken, receiverTok} {
			if bytes.Contains(body, []byte(secret)) {
				t.Fatalf("a response contains %q:\n%s", secret, body)
			}
		}
	}
}

type sse struct {
	resp  *http.Response
	lines chan string
}

func openStream(t *testing.T, b *browser, app string) *sse {
	t.Helper()
	req, _ := http.NewRequest("GET", b.e.url+"/console/api/events?app="+app, nil)
	c := *b.c
	c.Timeout = 0
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	s := &sse{resp: resp, lines: make(chan string, 1024)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	// The stream is registered once its first comment arrives.
	s.nextLine(t, ": open")
	return s
}

func (s *sse) nextLine(t *testing.T, prefix string) string {
	t.Helper()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("stream ended before %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timer.C:
			t.Fatalf("no %q line", prefix)
		}
	}
}

// next waits for an event of kind.
func (s *sse) next(t *testing.T, kind string) Event {
	t.Helper()
	for {
		l := s.nextLine(t, "data: {")
		var e Event
		if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == kind {
			return e
		}
	}
}

func (s *sse) close() { s.resp.Body.Close() }

func TestStreamShowsTheAppsActivity(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	b := e.browser()
	b.login(map[string]string{"token": "operator-token-0123456789"})
	one := openStream(t, b, "one")
	defer one.close()
	if !e.con.Watching() {
		t.Fatal("not watching with a stream open")
	}
	if err := e.srv.Trigger(context.Background(), "two", "chat", "other-app", "{}"); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Trigger(context.Background(), "one", "chat", "mine", "{}"); err != nil {
		t.Fatal(err)
	}
	if ev := one.next(t, "api_event"); ev.App != "one" || ev.Event != "mine" || ev.Channel != "chat" {
		t.Fatalf("event: %+v", ev)
	}
	// Logging out ends the session's streams at once.
	b.do("POST", "/console/api/logout", map[string]any{}, true)
	ended := time.NewTimer(5 * time.Second)
	defer ended.Stop()
	for open := true; open; {
		select {
		case _, open = <-one.lines: // drained until the server ends the stream
		case <-ended.C:
			t.Fatal("the stream outlived its session")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.con.Watching() {
		if time.Now().After(deadline) {
			t.Fatal("still watching after the last stream closed")
		}
		time.Sleep(5 * time.Millisecond) // polling a state
	}
}

// TestSlowStreamDropsAndNeverBlocks: a subscriber that never reads keeps
// at most StreamBuffer events; the rest are dropped and counted, and the
// publisher never waits.
func TestSlowStreamDropsAndNeverBlocks(t *testing.T) {
	st := newStream(8, 4, nil)
	slow := st.add("one")
	other := st.add("two")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10_000 {
			st.publish(Event{App: "one", Kind: "api_event", Channel: "chat"})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publish blocked on a slow subscriber")
	}
	if len(slow.ch) != 8 || slow.dropped.Load() != 10_000-8 {
		t.Fatalf("buffered %d, dropped %d", len(slow.ch), slow.dropped.Load())
	}
	if st.dropped.Load() != 10_000-8 {
		t.Fatalf("total dropped %d", st.dropped.Load())
	}
	if len(other.ch) != 0 || other.dropped.Load() != 0 {
		t.Fatal("another app's stream got events")
	}
	for range 2 {
		st.add("x")
	}
	if st.add("y") != nil {
		t.Fatal("more streams than the cap")
	}
}

// TestSlowHTTPStreamReportsDrops: over HTTP, a console that does not read
// while the server publishes loses events; when it reads again it is told
// how many.
func TestSlowHTTPStreamReportsDrops(t *testing.T) {
	e := newEnv(t, Config{StreamBuffer: 4}, nil)
	b := e.browser()
	b.login(map[string]string{"token": testToken})
	s := openStream(t, b, "one")
	defer s.close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20_000 {
			e.con.Observe(server.Observation{Time: time.Now(), App: "one", Kind: "api_event", Channel: "chat", Event: "flood"})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("observe blocked")
	}
	l := s.nextLine(t, "data: ")
	for !strings.HasPrefix(l, "data: ") || strings.HasPrefix(l, "data: {") {
		l = s.nextLine(t, "data: ")
	}
	if n := strings.TrimPrefix(l, "data: "); n == "0" || n == "" {
		t.Fatalf("dropped count %q", n)
	}
}

func TestSessionsAreCapped(t *testing.T) {
	ss := newSessions(3, time.Hour)
	now := time.Now()
	var first *session
	for i := range 5 {
		s := ss.create(true, "", now.Add(time.Duration(i)*time.Second))
		if i == 0 {
			first = s
		}
	}
	if ss.len() != 3 {
		t.Fatalf("%d sessions", ss.len())
	}
	if ss.get(first.id, now) != nil {
		t.Fatal("the oldest session survived the cap")
	}
	s := ss.create(true, "", now)
	if ss.get(s.id, now.Add(2*time.Hour)) != nil {
		t.Fatal("an expired session is still valid")
	}
}

func TestRingKeepsFifteenMinutes(t *testing.T) {
	r := newRing(int(15 * time.Minute / (10 * time.Second)))
	t0 := time.Now()
	for i := range 200 {
		r.add("one", t0.Add(time.Duration(i)*10*time.Second), int64(i), uint64(i*100), uint64(i*300))
	}
	list, last, ok := r.series("one")
	if !ok || len(list) != 90 || last.Connections != 199 || last.InPerSec != 10 || last.OutPerSec != 30 {
		t.Fatalf("%d samples, last %+v", len(list), last)
	}
	r.keep(nil)
	if _, _, ok := r.series("one"); ok {
		t.Fatal("a removed app kept its samples")
	}
}

// TestStreamOutlivesReadTimeout: the server's ReadTimeout (30 s in
// server.Serve) must not end an event stream: its read deadline is lifted.
func TestStreamOutlivesReadTimeout(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	hs := httptest.NewUnstartedServer(e.con.Handler())
	hs.Config.ReadTimeout = 100 * time.Millisecond
	hs.Start()
	defer hs.Close()
	b := e.browser()
	b.login(map[string]string{"token": testToken})
	u, _ := url.Parse(e.url)
	hu, _ := url.Parse(hs.URL)
	b.c.Jar.SetCookies(hu, b.c.Jar.Cookies(u))
	b.e = &env{t: t, url: hs.URL}
	s := openStream(t, b, "one")
	defer s.close()
	// Well past the read deadline, the stream still delivers.
	past := time.NewTimer(400 * time.Millisecond)
	<-past.C
	e.con.Observe(server.Observation{Time: time.Now(), App: "one", Kind: "api_event", Channel: "late"})
	if ev := s.next(t, "api_event"); ev.Channel != "late" {
		t.Fatalf("event %+v", ev)
	}
}

// TestStatsAndSeries: the counts come from the server, the chart from the
// samples Run takes.
func TestStatsAndSeries(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	e.con.d.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	b := e.browser()
	b.login(map[string]string{"key": "key-one", "secret": testSecret})
	e.con.sample()
	clock.Add(int64(10 * time.Second))
	for range 3 {
		if err := e.srv.Trigger(context.Background(), "one", "chat", "e", "{}"); err != nil {
			t.Fatal(err)
		}
	}
	e.con.sample()
	code, m, _ := b.do("GET", "/console/api/stats?app=one", nil, false)
	if code != 200 || m["connections"] != 0.0 || m["channels"] != 0.0 || m["interval_ms"] != 10000.0 {
		t.Fatalf("stats: %d %v", code, m)
	}
	series := m["series"].([]any)
	if len(series) != 2 || series[1].(map[string]any)["in_per_s"].(float64) <= 0 {
		t.Fatalf("series: %v", series)
	}
}

// TestStreamShowsPushPublishes: a publish appears when accepted and again
// when finished, with its counts; never its body or a device token.
func TestStreamShowsPushPublishes(t *testing.T) {
	const deviceToken = "device-token-abcdef0123456789"
	e := newEnv(t, Config{}, nil)
	b := e.browser()
	b.login(map[string]string{"token": testToken})
	s := openStream(t, b, "one")
	defer s.close()
	e.con.ObservePushAccepted("one", "pub_1", "scheduled", 3, time.Unix(1893456000, 0))
	e.con.ObservePush(storage.PushPublish{ID: "pub_1", App: "one", State: "partially_succeeded",
		Body: json.RawMessage(`{"notification":{"title":"hi"},"device_ids":["` + deviceToken + `"]}`),
		Counters: storage.PushCounters{Planned: 3, Sent: 1, Failed: 1, Invalidated: 1,
			ErrorsByReason: map[string]int{"Unregistered": 1, "BadDeviceToken": 1}}})
	tcs := []struct{ state, detail string }{
		{"scheduled", "publish pub_1 accepted, scheduled: 3 device(s) planned, sending at 2030-01-01T00:00:00Z"},
		{"partially_succeeded", "publish pub_1 finished, partially_succeeded: 3 planned, 1 sent, 1 failed, 1 invalidated (BadDeviceToken 1, Unregistered 1)"},
	}
	for _, tc := range tcs {
		ev := s.next(t, KindPush)
		if strings.Contains(ev.Detail, deviceToken) {
			t.Fatalf("a device token in %+v", ev)
		}
		if ev.App != "one" || ev.Event != tc.state || ev.Detail != tc.detail {
			t.Fatalf("got %+v, want %s %q", ev, tc.state, tc.detail)
		}
	}
	// The whole events are compared: nothing of the body or the devices.
}
