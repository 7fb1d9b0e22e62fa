package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

func TestSignSpecVector(t *testing.T) {
	// Spec §4.2 worked example.
	body := []byte(`{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`)
	const (
		key, secret = "278d425bdf160c739803", "7ad3773142a6692b25b8"
		wantMD5     = "ec365a775a4cd0599faeb73354201b6f"
		wantSig     = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
		wantToSign  = "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f"
	)
	if got := bodyMD5(body); got != wantMD5 {
		t.Fatalf("body_md5 = %s, want %s", got, wantMD5)
	}
	p := signParams("POST", "/apps/3/events", key, secret, body, 1353088179)
	if p["body_md5"] != wantMD5 {
		t.Errorf("body_md5 param = %s", p["body_md5"])
	}
	if got := stringToSign("POST", "/apps/3/events", p); got != wantToSign {
		t.Errorf("string to sign = %q, want %q", got, wantToSign)
	}
	if p["auth_signature"] != wantSig {
		t.Errorf("auth_signature = %s, want %s", p["auth_signature"], wantSig)
	}
	// The URL form carries the same values.
	u, err := url.Parse(signedURL("http://127.0.0.1:6001", "/apps/3/events", "POST", key, secret, body, 1353088179))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("auth_signature") != wantSig || q.Get("body_md5") != wantMD5 || q.Get("auth_version") != "1.0" ||
		q.Get("auth_key") != key || q.Get("auth_timestamp") != "1353088179" || u.Path != "/apps/3/events" {
		t.Errorf("signed URL %s", u)
	}
}

func TestSignNoBody(t *testing.T) {
	p := signParams("get", "/apps/3/channels", "k", "s", nil, 10)
	if _, ok := p["body_md5"]; ok {
		t.Error("body_md5 must be absent for an empty body")
	}
	if want := hmacHex("s", "GET\n/apps/3/channels\nauth_key=k&auth_timestamp=10&auth_version=1.0"); p["auth_signature"] != want {
		t.Errorf("signature %s, want %s", p["auth_signature"], want)
	}
	if got := bodyMD5([]byte("{}")); got != "99914b932bd37a50b983c5e7c90ae93b" {
		t.Errorf("md5({}) = %s", got)
	}
}

func TestCanonicalQuery(t *testing.T) {
	for _, tc := range []struct {
		in   map[string]string
		want string
	}{
		{map[string]string{}, ""},
		{map[string]string{"b": "2", "a": "1"}, "a=1&b=2"},
		{map[string]string{"auth_signature": "x", "auth_key": "k"}, "auth_key=k"},
		{map[string]string{"Info": "user_count,subscription_count", "filter_by_prefix": "presence-"},
			"filter_by_prefix=presence-&info=user_count,subscription_count"},
	} {
		if got := canonicalQuery(tc.in); got != tc.want {
			t.Errorf("canonicalQuery(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBuildWSURL(t *testing.T) {
	for _, tc := range []struct{ base, key, want, err string }{
		{"ws://127.0.0.1:6001", "app-key", "ws://127.0.0.1:6001/app/app-key?protocol=7&client=js&version=8.6.0&flash=false", ""},
		{"ws://127.0.0.1:6001/", "k", "ws://127.0.0.1:6001/app/k?protocol=7&client=js&version=8.6.0&flash=false", ""},
		{"wss://localhost/ws/", "k", "wss://localhost/ws/app/k?protocol=7&client=js&version=8.6.0&flash=false", ""},
		{"ws://[::1]:9", "a b", "ws://[::1]:9/app/a%20b?protocol=7&client=js&version=8.6.0&flash=false", ""},
		{"http://127.0.0.1:6001", "k", "", "scheme"},
		{"ws://", "k", "", "no host"},
	} {
		got, err := buildWSURL(tc.base, tc.key)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("buildWSURL(%q) err = %v, want %q", tc.base, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("buildWSURL(%q, %q) = %q, %v; want %q", tc.base, tc.key, got, err, tc.want)
		}
	}
}

func TestDeriveHTTPBaseAndEventsPath(t *testing.T) {
	for _, tc := range []struct{ ws, http, origin, path string }{
		{"ws://127.0.0.1:6001", "http://127.0.0.1:6001", "http://127.0.0.1:6001", "/apps/1/events"},
		{"wss://localhost:443/", "https://localhost:443", "https://localhost:443", "/apps/1/events"},
		{"ws://127.0.0.1/pfx/", "http://127.0.0.1/pfx", "http://127.0.0.1", "/pfx/apps/1/events"},
	} {
		h, err := deriveHTTPBase(tc.ws)
		if err != nil || h != tc.http {
			t.Errorf("deriveHTTPBase(%q) = %q, %v; want %q", tc.ws, h, err, tc.http)
			continue
		}
		o, p, err := eventsURLParts(h, "1")
		if err != nil || o != tc.origin || p != tc.path {
			t.Errorf("eventsURLParts(%q) = %q %q %v; want %q %q", h, o, p, err, tc.origin, tc.path)
		}
	}
	if _, err := deriveHTTPBase("http://x"); err == nil {
		t.Error("deriveHTTPBase accepted http://")
	}
	if _, _, err := eventsURLParts("ws://127.0.0.1", "1"); err == nil {
		t.Error("eventsURLParts accepted ws://")
	}
}

func TestLoopback(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"ws://127.0.0.1:6001", true},
		{"ws://127.1.2.3:6001", true},
		{"http://localhost:6001", true},
		{"http://LOCALHOST.:6001", true},
		{"ws://[::1]:6001", true},
		{"ws://[::ffff:127.0.0.1]:6001", true},
		{"ws://128.0.0.1:6001", false},
		{"ws://10.0.0.1:6001", false},
		{"ws://[::2]:6001", false},
		{"ws://0.0.0.0:6001", false},
		{"ws://example.com", false},
		{"ws://localhost.example.com", false},
		{"ws://127.0.0.1.nip.io", false},
		{"ws://", false},
	} {
		err := checkLoopbackURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("checkLoopbackURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
		if err != nil && tc.url != "ws://" && !errors.Is(err, errNotLoopback) {
			t.Errorf("checkLoopbackURL(%q) error %v is not errNotLoopback", tc.url, err)
		}
	}
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:80", true}, {"[::1]:80", true}, {"[fe80::1%lo]:80", false},
		{"10.1.1.1:80", false}, {"[2001:db8::1]:443", false}, {"nonsense", false},
	} {
		if err := checkLoopbackAddr(tc.addr); (err == nil) != tc.ok {
			t.Errorf("checkLoopbackAddr(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}

func TestConfigRefusesRemote(t *testing.T) {
	for _, tc := range []struct {
		url, http string
		allow     bool
		ok        bool
	}{
		{"ws://127.0.0.1:6001", "", false, true},
		{"ws://192.0.2.1:6001", "", false, false},
		{"ws://127.0.0.1:6001", "http://192.0.2.1:6001", false, false},
		{"ws://192.0.2.1:6001", "", true, true},
	} {
		c := config{URL: tc.url, HTTP: tc.http, AllowRemote: tc.allow, Channel: "bench", Key: "k", AppID: "1", Conns: 1, Subs: -1}
		err := c.normalize()
		if (err == nil) != tc.ok {
			t.Errorf("normalize(%+v) = %v, want ok=%v", tc, err, tc.ok)
		}
	}
	// Defaults from the flag parser.
	c, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP != "http://127.0.0.1:6001" || c.Subs != 1000 || c.Conns != 1000 || c.AllowRemote || c.Key != "app-key" {
		t.Errorf("defaults: %+v", c)
	}
	if _, err := parseFlags([]string{"-url", "ws://example.com:6001"}, io.Discard); !errors.Is(err, errNotLoopback) {
		t.Errorf("remote -url accepted: %v", err)
	}
}

func TestEventPayload(t *testing.T) {
	const ts = int64(1712345678901234567)
	for _, size := range []int{0, 10, minEventData, minEventData + 1, 64, 1000} {
		data := eventData(ts, size)
		if want := max(size, minEventData); len(data) != want {
			t.Errorf("len(eventData(size=%d)) = %d, want %d", size, len(data), want)
		}
		var v struct {
			T int64  `json:"t"`
			P string `json:"p"`
		}
		if err := json.Unmarshal(data, &v); err != nil || v.T != ts {
			t.Errorf("eventData(%d) = %s: %v", size, data, err)
		}
		body := eventBody("bench", "bench", ts, size)
		var b struct{ Name, Channel, Data string }
		if err := json.Unmarshal(body, &b); err != nil || b.Name != "bench" || b.Channel != "bench" || b.Data != string(data) {
			t.Errorf("eventBody = %s: %v", body, err)
		}
		// What a server delivers: data passed through as the same string.
		frame, _ := json.Marshal(map[string]string{"event": "bench", "channel": "bench", "data": b.Data})
		if got, ok := frameTimestamp(frame); !ok || got != ts {
			t.Errorf("frameTimestamp(%s) = %d, %v", frame, got, ok)
		}
	}
}

func TestFrameEvent(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}`, "pusher:connection_established"},
		{`{"data":"{\"event\":\"fake\"}","event":"bench","channel":"c"}`, "bench"},
		{`{ "event" : "pusher:ping", "data": {} }`, "pusher:ping"},
		{`{"channel":"c","event":"pusher_internal:subscription_succeeded","data":"{}"}`, "pusher_internal:subscription_succeeded"},
		{`{"data":"x"}`, ""},
		{`{"event":1}`, ""},
		{`{"event":"unterminated`, ""},
		{``, ""},
	} {
		if got := string(frameEvent([]byte(tc.in))); got != tc.want {
			t.Errorf("frameEvent(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFrameTimestamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{`{"event":"bench","channel":"c","data":"{\"t\":123,\"p\":\"xx\"}"}`, 123, true},
		{`{"event":"bench","data":{"t": 456,"p":""}}`, 456, true},
		{`{"event":"bench","data":"{\"t\":\"abc\"}"}`, 0, false},
		{`{"event":"bench","data":"hello"}`, 0, false},
		{`{"event":"bench","data":"{\"t\":12345678901234567890}"}`, 0, false},
	} {
		got, ok := frameTimestamp([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("frameTimestamp(%s) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPercentile(t *testing.T) {
	seq := func(n int) []uint64 { // one sample in each of buckets 0..n-1
		c := make([]uint64, n)
		for i := range c {
			c[i] = 1
		}
		return c
	}
	for _, tc := range []struct {
		name   string
		counts []uint64
		q      float64
		want   int
		ok     bool
	}{
		{"empty", nil, 0.5, 0, false},
		{"zeros", []uint64{0, 0, 0}, 0.5, 0, false},
		{"single", []uint64{0, 0, 5}, 0.5, 2, true},
		{"p50 of 100", seq(100), 0.50, 49, true},
		{"p99 of 100", seq(100), 0.99, 98, true},
		{"p100 of 100", seq(100), 1.0, 99, true},
		{"p0 is the min", []uint64{0, 3, 0, 1}, 0, 1, true},
		{"p50 of 2", []uint64{1, 1}, 0.5, 0, true},
		{"p51 of 2", []uint64{1, 1}, 0.51, 1, true},
		{"skewed p99", []uint64{990, 0, 9, 1}, 0.99, 0, true},
		{"skewed p99.9", []uint64{990, 0, 9, 1}, 0.999, 2, true},
		{"q>1 clamps", []uint64{1, 0, 1}, 2, 2, true},
	} {
		got, ok := percentileBucket(tc.counts, tc.q)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: percentileBucket(q=%v) = %d, %v; want %d, %v", tc.name, tc.q, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0}, {0, 0}, {9 * time.Microsecond, 0}, {10 * time.Microsecond, 1},
		{time.Millisecond, 100}, {histRange - 1, histBuckets - 1}, {histRange, histBuckets}, {time.Hour, histBuckets},
	} {
		if got := bucketOf(tc.d); got != tc.want {
			t.Errorf("bucketOf(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
	// Through the histogram: 1..100 ms.
	h := newHistogram()
	for i := 1; i <= 100; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	c, mx := h.snapshot(), h.maxNs.Load()
	for _, tc := range []struct{ q, want float64 }{{0.5, 50.01}, {0.99, 99.01}, {1, 100}} {
		if got := percentileMs(c, tc.q, mx); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("percentileMs(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if h.n.Load() != 100 || mx != int64(100*time.Millisecond) {
		t.Errorf("n=%d max=%d", h.n.Load(), mx)
	}
	h.record(time.Minute)
	if got := percentileMs(h.snapshot(), 1, h.maxNs.Load()); got != 60000 {
		t.Errorf("overflow percentile = %v, want 60000", got)
	}
}

func TestParseVmRSS(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int64
		ok       bool
	}{
		{"proc", "Name:\tsockudo\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1 kB\n", 12345, true},
		{"no unit", "VmRSS: 7\n", 7, true},
		{"mb", "VmRSS:\t2 mB\n", 2048, true},
		{"kernel thread", "Name:\tkthreadd\nState:\tS\n", 0, false},
		{"garbage", "VmRSS:\tlots kB\n", 0, false},
		{"empty value", "VmRSS:\n", 0, false},
		{"bad unit", "VmRSS:\t1 pages\n", 0, false},
	} {
		got, err := parseVmRSS(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("%s: parseVmRSS = %d, %v; want %d ok=%v", tc.name, got, err, tc.want, tc.ok)
		}
	}
	if v, err := readRSS(0); err != nil || v <= 0 {
		t.Errorf("readRSS(self) = %d, %v", v, err)
	}
	for _, tc := range []struct {
		b, a int64
		n    int
		want float64
	}{{1000, 6000, 1000, 5}, {1000, 6000, 0, 0}, {6000, 5000, 500, -2}} {
		if got := perConnKiB(tc.b, tc.a, tc.n); got != tc.want {
			t.Errorf("perConnKiB(%d,%d,%d) = %v, want %v", tc.b, tc.a, tc.n, got, tc.want)
		}
	}
}

// ---------------------------------------------------------------------------
// A throwaway fake Pusher server: connection_established, subscribe,
// pusher:ping after subscribing, and signed POST /apps/<id>/events fan-out.

type fakeServer struct {
	appID, key, secret string
	srv                *httptest.Server
	upgrader           *gws.Upgrader

	mu    sync.Mutex
	subs  map[string]map[*gws.Conn]bool
	conns map[*gws.Conn]bool
	n     atomic.Int64
	pongs atomic.Int64
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{appID: "app-id", key: "app-key", secret: "app-secret",
		subs: map[string]map[*gws.Conn]bool{}, conns: map[*gws.Conn]bool{}}
	f.upgrader = gws.NewUpgrader(f, &gws.ServerOption{})
	mux := http.NewServeMux()
	mux.HandleFunc("/app/", func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/app/")
		q := r.URL.Query()
		if q.Get("protocol") != "7" || q.Get("client") != "js" {
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
		c, err := f.upgrader.Upgrade(w, r)
		if err != nil {
			return
		}
		if key == "silent-key" { // upgrades but never sends connection_established
			c.Session().Store("silent", true)
			go c.ReadLoop()
			return
		}
		if key != f.key {
			_ = c.WriteString(`{"event":"pusher:error","data":{"code":4001,"message":"App key ` + key + ` not in this cluster."}}`)
			_ = c.WriteClose(4001, nil)
			return
		}
		go c.ReadLoop()
	})
	mux.HandleFunc("POST /apps/{id}/events", f.events)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.srv.Close()
		f.mu.Lock()
		for c := range f.conns {
			_ = c.WriteClose(1001, nil)
		}
		f.mu.Unlock()
	})
	return f
}

func (f *fakeServer) wsURL() string { return "ws" + strings.TrimPrefix(f.srv.URL, "http") }

func (f *fakeServer) OnOpen(c *gws.Conn) {
	if _, silent := c.Session().Load("silent"); silent {
		return
	}
	id := f.n.Add(1)
	f.mu.Lock()
	f.conns[c] = true
	f.mu.Unlock()
	_ = c.WriteString(`{"event":"pusher:connection_established","data":"{\"socket_id\":\"` +
		strconv.FormatInt(id, 10) + `.` + strconv.FormatInt(id*7, 10) + `\",\"activity_timeout\":120}"}`)
}

func (f *fakeServer) OnClose(c *gws.Conn, _ error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
	for _, s := range f.subs {
		delete(s, c)
	}
}

func (f *fakeServer) OnPing(c *gws.Conn, p []byte) { _ = c.WritePong(p) }
func (f *fakeServer) OnPong(*gws.Conn, []byte)     {}

func (f *fakeServer) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	var msg struct {
		Event string `json:"event"`
		Data  struct {
			Channel string `json:"channel"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Bytes(), &msg); err != nil {
		return
	}
	switch msg.Event {
	case "pusher:subscribe":
		f.mu.Lock()
		if f.subs[msg.Data.Channel] == nil {
			f.subs[msg.Data.Channel] = map[*gws.Conn]bool{}
		}
		f.subs[msg.Data.Channel][c] = true
		f.mu.Unlock()
		ch, _ := json.Marshal(msg.Data.Channel)
		_ = c.WriteString(`{"event":"pusher_internal:subscription_succeeded","channel":` + string(ch) + `,"data":"{}"}`)
		_ = c.WriteString(`{"event":"pusher:ping","data":{}}`)
	case "pusher:ping":
		_ = c.WriteString(`{"event":"pusher:pong","data":"{}"}`)
	case "pusher:pong":
		f.pongs.Add(1)
	}
}

func (f *fakeServer) events(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.PathValue("id") != f.appID {
		http.Error(w, `{"error":"unknown app","code":404}`, http.StatusNotFound)
		return
	}
	// Verify per spec §4.2 from the decoded query.
	q := r.URL.Query()
	params := map[string]string{}
	for k, v := range q {
		params[k] = v[0]
	}
	want := hmacHex(f.secret, "POST\n"+r.URL.Path+"\n"+canonicalQuery(params))
	if q.Get("auth_key") != f.key || q.Get("body_md5") != bodyMD5(body) || q.Get("auth_version") != "1.0" ||
		!hmac.Equal([]byte(want), []byte(q.Get("auth_signature"))) {
		http.Error(w, "Invalid signature: you should have sent HmacSHA256Hex(...)", http.StatusUnauthorized)
		return
	}
	var ev struct{ Name, Channel, Data string }
	if err := json.Unmarshal(body, &ev); err != nil || ev.Name == "" || ev.Channel == "" {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	frame, _ := json.Marshal(struct {
		Event   string `json:"event"`
		Channel string `json:"channel"`
		Data    string `json:"data"`
	}{ev.Name, ev.Channel, ev.Data})
	f.mu.Lock()
	targets := make([]*gws.Conn, 0, len(f.subs[ev.Channel]))
	for c := range f.subs[ev.Channel] {
		targets = append(targets, c)
	}
	f.mu.Unlock()
	for _, c := range targets {
		c.WriteAsync(gws.OpcodeText, frame, nil)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{}`))
}

func testConfig(f *fakeServer) config {
	return config{
		URL: f.wsURL(), AppID: f.appID, Key: f.key, Secret: f.secret, Channel: "bench",
		Conns: 50, Subs: 40, Publishes: 20, Payload: 128, Concurrency: 10,
		Settle: 50 * time.Millisecond, Timeout: 3 * time.Second, PID: os.Getpid(),
		DialTimeout: 3 * time.Second, ConnectTimeout: 10 * time.Second, HTTPTimeout: 2 * time.Second,
	}
}

func TestEndToEnd(t *testing.T) {
	f := newFakeServer(t)
	cfg := testConfig(f)
	var printed bytes.Buffer
	rep, err := run(context.Background(), cfg, io.Discard, func(r *report) { printText(&printed, r) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", printed.String())
	if rep.ConnsOpened != 50 || rep.ConnsFailed != 0 || rep.Subscribed != 40 {
		t.Errorf("connections: %+v", rep)
	}
	if rep.PublishesOK != 20 || rep.PublishesFailed != 0 {
		t.Errorf("publishes: ok %d failed %d (%s)", rep.PublishesOK, rep.PublishesFailed, rep.FirstPublishErr)
	}
	if rep.Expected != 800 || rep.Delivered != 800 || rep.DeliveryTimedOut || rep.Unparsed != 0 {
		t.Errorf("deliveries: expected %d delivered %d timedout %v unparsed %d", rep.Expected, rep.Delivered, rep.DeliveryTimedOut, rep.Unparsed)
	}
	if rep.LatencyP50Ms <= 0 || rep.LatencyP99Ms < rep.LatencyP50Ms || rep.LatencyMaxMs < rep.LatencyP99Ms-0.01 || rep.DeliveredPerSec <= 0 {
		t.Errorf("latency/throughput: %+v", rep)
	}
	if rep.RSSBeforeKiB <= 0 || rep.RSSAfterKiB <= 0 || rep.RSSEndKiB <= 0 || rep.RSSError != "" {
		t.Errorf("RSS: before %d after %d end %d err %q", rep.RSSBeforeKiB, rep.RSSAfterKiB, rep.RSSEndKiB, rep.RSSError)
	}
	if rep.ServerPings != 40 || rep.Dropped != 0 || rep.PayloadBytes != 128 {
		t.Errorf("pings %d dropped %d payload %d", rep.ServerPings, rep.Dropped, rep.PayloadBytes)
	}
	// Pongs are sent on receipt of the ping; give the server's read loops a moment.
	for end := time.Now().Add(time.Second); f.pongs.Load() < 40 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	if f.pongs.Load() != 40 {
		t.Errorf("server received %d pongs, want 40", f.pongs.Load())
	}
	// All connections closed at the end.
	for end := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		f.mu.Lock()
		n := len(f.conns)
		f.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(end) {
			t.Errorf("%d connections still open on the server after the run", n)
			break
		}
	}
	if !strings.Contains(printed.String(), "latency ms:") || !strings.Contains(printed.String(), "nproc=") {
		t.Errorf("text report:\n%s", printed.String())
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}
}

func TestEndToEndFailures(t *testing.T) {
	f := newFakeServer(t)

	// Wrong key: the server sends pusher:error and closes; all dials fail.
	cfg := testConfig(f)
	cfg.Key, cfg.Conns, cfg.Publishes, cfg.PID, cfg.Settle = "wrong-key", 5, 0, 0, 0
	rep, err := run(context.Background(), cfg, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConnsOpened != 0 || rep.ConnsFailed != 5 || !strings.Contains(rep.FirstConnError, "4001") {
		t.Errorf("wrong key: opened %d failed %d err %q", rep.ConnsOpened, rep.ConnsFailed, rep.FirstConnError)
	}

	// Server never completes the Pusher handshake: every dial times out, bounded.
	cfg = testConfig(f)
	cfg.Key, cfg.Conns, cfg.Concurrency, cfg.Publishes, cfg.PID, cfg.Settle = "silent-key", 4, 4, 0, 0, 0
	cfg.DialTimeout = 200 * time.Millisecond
	start := time.Now()
	rep, err = run(context.Background(), cfg, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConnsFailed != 4 || !strings.Contains(rep.FirstConnError, "no pusher:connection_established") || time.Since(start) > 2*time.Second {
		t.Errorf("silent server: failed %d err %q in %v", rep.ConnsFailed, rep.FirstConnError, time.Since(start))
	}

	// Wrong secret: publishes fail with 401 and the body is reported.
	cfg = testConfig(f)
	cfg.Secret, cfg.Conns, cfg.Publishes, cfg.Timeout, cfg.PID, cfg.Settle = "wrong", 5, 3, 100*time.Millisecond, 0, 0
	rep, err = run(context.Background(), cfg, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.PublishesOK != 0 || rep.PublishesFailed != 3 || !strings.Contains(rep.FirstPublishErr, "HTTP 401: Invalid signature") ||
		rep.Expected != 0 || rep.Delivered != 0 {
		t.Errorf("wrong secret: %+v", rep)
	}

	// Nothing listening: connection refused, bounded, no panic.
	cfg = testConfig(f)
	cfg.URL, cfg.HTTP, cfg.Conns, cfg.Publishes, cfg.PID, cfg.Settle = "ws://127.0.0.1:1", "", 3, 2, 0, 0
	start = time.Now()
	rep, err = run(context.Background(), cfg, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConnsFailed != 3 || rep.PublishesFailed != 2 || time.Since(start) > 5*time.Second {
		t.Errorf("refused: %+v in %v", rep, time.Since(start))
	}

	// Remote target without -allow-remote: refused before any traffic.
	cfg = testConfig(f)
	cfg.URL, cfg.HTTP = "ws://192.0.2.1:6001", ""
	if _, err := run(context.Background(), cfg, io.Discard, nil); !errors.Is(err, errNotLoopback) {
		t.Errorf("remote target: err = %v", err)
	}
}

func TestInterrupted(t *testing.T) {
	f := newFakeServer(t)
	cfg := testConfig(f)
	cfg.Hold = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	rep, err := run(ctx, cfg, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted || rep.ConnsOpened != 0 || rep.ConnsFailed != cfg.Conns || rep.PublishesOK != 0 || time.Since(start) > 2*time.Second {
		t.Errorf("interrupted run: %+v in %v", rep, time.Since(start))
	}
}

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     time.Duration
		ok       bool
	}{
		{"plain", "42 (sockudo) S 1 42 42 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 5 0 100 1000 300", 3800 * time.Millisecond, true},
		{"name with spaces and parens", "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 1 1", 30 * time.Millisecond, true},
		{"short", "7 (x) R 1 2 3", 0, false},
		{"no command", "garbage", 0, false},
		{"bad number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 x 2 0", 0, false},
	} {
		got, err := parseStatCPU(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("%s: parseStatCPU = %v, %v; want %v ok=%v", tc.name, got, err, tc.want, tc.ok)
		}
	}
	if _, err := readCPU(os.Getpid()); err != nil {
		t.Errorf("readCPU(self): %v", err)
	}
}

func TestParallelPublishersAndChannelPerConn(t *testing.T) {
	f := newFakeServer(t)
	cfg := testConfig(f)
	cfg.Publishers, cfg.Publishes, cfg.Subs = 4, 40, 40
	rep, err := run(context.Background(), cfg, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.PublishesOK != 40 || rep.PublishesFailed != 0 || rep.Delivered != 1600 || rep.PublishesPerSec <= 0 {
		t.Errorf("parallel publishers: ok %d failed %d (%s) delivered %d rate %v",
			rep.PublishesOK, rep.PublishesFailed, rep.FirstPublishErr, rep.Delivered, rep.PublishesPerSec)
	}
	if rep.ServerCPUSeconds < 0 {
		t.Errorf("server CPU %v", rep.ServerCPUSeconds)
	}

	// One channel per connection: every subscription succeeds, each on its
	// own channel (the fake server keeps a channel's entry after its
	// subscriber leaves).
	cfg = testConfig(f)
	cfg.ChannelPerConn, cfg.Conns, cfg.Subs, cfg.Publishes = true, 10, 10, 0
	rep, err = run(context.Background(), cfg, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Subscribed != 10 || rep.Delivered != 0 {
		t.Errorf("channel per conn: subscribed %d delivered %d", rep.Subscribed, rep.Delivered)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 0; i < 10; i++ {
		if _, ok := f.subs["bench-"+strconv.Itoa(i)]; !ok {
			t.Errorf("nobody subscribed to bench-%d", i)
		}
	}
}
