package server

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
)

// TestMain fails the run if goroutines outlive the tests (style §2.11).
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "goroutine leak: %d before, %d after\n%s\n", before, n, buf[:runtime.Stack(buf, true)])
			code = 1
		}
	}
	os.Exit(code)
}

type memStore struct {
	mu   sync.Mutex
	apps []storage.App
	raw  []storage.AppRecord // listed after apps, as stored (damaged records)
	down bool
}

func (m *memStore) AppRecords() ([]storage.AppRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	recs, err := storage.NewAppRecords(m.apps...)
	return append(recs, m.raw...), err
}

func (m *memStore) Ping() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errors.New("down")
	}
	return nil
}

func testApp() storage.App {
	return storage.App{ID: "app-id", Key: "app-key", Secret: "app-secret", Enabled: true,
		EnableClientMessages: true, EnableUserAuthentication: true, EnableWatchlistEvents: true}
}

type testServer struct {
	*Server
	addr  string
	store *memStore
}

func newTestServer(t testing.TB, cfg Config, apps ...storage.App) *testServer {
	t.Helper()
	if len(apps) == 0 {
		apps = []storage.App{testApp()}
	}
	store := &memStore{apps: apps}
	s, err := New(cfg, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	return serveTest(t, s, store)
}

// serveTest serves s on a loopback port until the test ends.
func serveTest(t testing.TB, s *Server, store *memStore) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	s.MarkReady()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		t0 := time.Now()
		err := s.Shutdown(ctx)
		<-done
		if d := time.Since(t0); d > time.Second {
			t.Logf("slow shutdown: %s (%v), %d sockets", d, err, s.conns.Load())
		}
	})
	return &testServer{Server: s, addr: ln.Addr().String(), store: store}
}

// frame is one decoded server frame.
type frame struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	UserID  string          `json:"user_id"`
	raw     string
}

// dataString returns Data when it is a JSON string.
func (f frame) dataString(t testing.TB) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(f.Data, &s); err != nil {
		t.Fatalf("data of %s is not a JSON string: %s", f.Event, f.Data)
	}
	return s
}

type testClient struct {
	t        testing.TB
	ws       *gws.Conn
	frames   chan frame
	pongs    chan []byte // payloads of WebSocket pongs
	closed   chan struct{}
	code     uint16
	socketID string
}

type clientHandler struct {
	gws.BuiltinEventHandler
	c *testClient
}

func (h *clientHandler) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	var f frame
	if err := json.Unmarshal(m.Bytes(), &f); err != nil {
		f = frame{Event: "<invalid json>"}
	}
	f.raw = string(m.Bytes())
	h.c.frames <- f
}

func (h *clientHandler) OnPong(_ *gws.Conn, payload []byte) {
	select {
	case h.c.pongs <- append([]byte(nil), payload...):
	default:
	}
}

func (h *clientHandler) OnClose(_ *gws.Conn, err error) {
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		h.c.code = ce.Code
	}
	close(h.c.closed)
}

// dial connects to path (default /app/app-key) and returns the client
// without reading anything.
func (ts *testServer) dialRaw(t testing.TB, path string, header http.Header) *testClient {
	t.Helper()
	if path == "" {
		path = "/app/app-key?protocol=7&client=js&version=8.6.0"
	}
	c := &testClient{t: t, frames: make(chan frame, 1024), pongs: make(chan []byte, 16), closed: make(chan struct{})}
	ws, _, err := gws.NewClient(&clientHandler{c: c}, &gws.ClientOption{Addr: "ws://" + ts.addr + path, RequestHeader: header})
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	c.ws = ws
	go ws.ReadLoop()
	t.Cleanup(func() { _ = ws.NetConn().Close(); <-c.closed })
	return c
}

// dial connects to the default app and waits for connection_established.
func (ts *testServer) dial(t testing.TB) *testClient {
	t.Helper()
	c := ts.dialRaw(t, "", nil)
	f := c.expect("pusher:connection_established")
	var d struct {
		SocketID string `json:"socket_id"`
	}
	_ = json.Unmarshal([]byte(f.dataString(t)), &d)
	c.socketID = d.SocketID
	return c
}

const waitTimeout = 5 * time.Second

// next returns the next frame or fails after a timeout.
func (c *testClient) next() frame {
	c.t.Helper()
	select {
	case f := <-c.frames:
		return f
	case <-time.After(waitTimeout):
		c.t.Fatal("timed out waiting for a frame")
		return frame{}
	}
}

// expect returns the next frame, which must be event.
func (c *testClient) expect(event string) frame {
	c.t.Helper()
	f := c.next()
	if f.Event != event {
		c.t.Fatalf("got %s, want %s", f.raw, event)
	}
	return f
}

// expectClose waits for the socket to close and returns the close code.
func (c *testClient) expectClose() uint16 {
	c.t.Helper()
	select {
	case <-c.closed:
		return c.code
	case <-time.After(waitTimeout):
		c.t.Fatal("timed out waiting for close")
		return 0
	}
}

func (c *testClient) sendJSON(v string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(gws.OpcodeText, []byte(v)); err != nil {
		c.t.Fatal(err)
	}
}

// subscribe subscribes to a public channel and waits for success.
func (c *testClient) subscribe(channel string) {
	c.t.Helper()
	c.sendJSON(`{"event":"pusher:subscribe","data":{"auth":"","channel":"` + channel + `"}}`)
	c.expect("pusher_internal:subscription_succeeded")
}

// signin signs in with userData (signed with the app secret) and waits for
// signin_success.
func (c *testClient) signin(userData string) {
	c.t.Helper()
	auth := "app-key:" + protocol.Sign("app-secret", protocol.UserString(c.socketID, userData))
	b, _ := json.Marshal(map[string]any{"event": "pusher:signin", "data": map[string]string{"auth": auth, "user_data": userData}})
	c.sendJSON(string(b))
	c.expect("pusher:signin_success")
}

func (c *testClient) subscribeAuth(channel, channelData, secret string) {
	c.t.Helper()
	auth := "app-key:" + protocol.Sign(secret, protocol.ChannelString(c.socketID, channel, channelData))
	b, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": channel, "auth": auth, "channel_data": channelData}})
	c.sendJSON(string(b))
}

// ping round-trips a pusher:ping: every frame sent before it has been
// handled once the pong arrives.
func (c *testClient) ping() {
	c.t.Helper()
	c.sendJSON(`{"event":"pusher:ping","data":{}}`)
	c.expect("pusher:pong")
}

// api sends a signed HTTP API request.
func (ts *testServer) api(t testing.TB, method, path string, query url.Values, body string) (int, string) {
	t.Helper()
	return ts.apiSigned(t, method, path, query, body, "app-key", "app-secret", time.Now())
}

// newSignedRequest builds a request signed like the Pusher SDKs do.
func (ts *testServer) newSignedRequest(t testing.TB, method, path string, query url.Values, body, key, secret string, now time.Time) *http.Request {
	t.Helper()
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Set("auth_key", key)
	q.Set("auth_timestamp", strconv.FormatInt(now.Unix(), 10))
	q.Set("auth_version", "1.0")
	if body != "" {
		sum := md5.Sum([]byte(body))
		q.Set("body_md5", hex.EncodeToString(sum[:]))
	}
	q.Set("auth_signature", protocol.Sign(secret, protocol.RequestString(method, path, q)))
	req, err := http.NewRequest(method, "http://"+ts.addr+path+"?"+q.Encode(), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

func (ts *testServer) apiSigned(t testing.TB, method, path string, query url.Values, body, key, secret string, now time.Time) (int, string) {
	t.Helper()
	req := ts.newSignedRequest(t, method, path, query, body, key, secret, now)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (ts *testServer) trigger(t testing.TB, channel, event, data string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": event, "channels": []string{channel}, "data": data})
	if code, resp := ts.api(t, "POST", "/apps/app-id/events", nil, string(body)); code != 200 {
		t.Fatalf("trigger: %d %s", code, resp)
	}
}

func signedRequest(t testing.TB, ts *testServer, method, path, body string) *http.Request {
	return ts.newSignedRequest(t, method, path, nil, body, "app-key", "app-secret", time.Now())
}
