package server

import (
	"crypto/md5"
	"encoding/hex"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
)

// benchServer is a server whose n subscribers of channel "bench" are
// sockets that accept every write at once (discardConn).
func benchServer(b *testing.B, n int) (*Server, *discardConn) {
	s, err := New(Config{MaxPendingBytes: 1 << 30}, &memStore{apps: []storage.App{testApp()}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	a := s.apps.byKey("app-key")
	dc := &discardConn{}
	for i := 0; i < n; i++ {
		c := &conn{srv: s, nc: dc, app: a, socketID: strconv.Itoa(i) + ".1"}
		c.flushFn = c.flush
		benchSubscribe(s, c, "bench")
	}
	// Let the subscription frames drain before measuring.
	waitWritten(dc, dc.n.Load())
	return s, dc
}

func waitWritten(dc *discardConn, want int64) {
	for dc.n.Load() < want {
		runtime.Gosched()
	}
}

// BenchmarkFanOut publishes one event to N local subscribers whose
// sockets accept writes at once. allocs/op must not grow with N: the frame
// is encoded once and shared.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run("subscribers="+strconv.Itoa(n), func(b *testing.B) {
			s, dc := benchServer(b, n)
			payload := []byte(`{"event":"e","channel":"bench","data":"{\"hello\":\"world\"}"}`)
			frame := protocol.TextFrame(payload)
			b.ReportAllocs()
			b.ResetTimer()
			// Each op is one publish delivered to every subscriber: wait for
			// the writers so queues stay in their steady state.
			per := int64(n) * int64(len(frame))
			base := dc.n.Load()
			for i := 0; i < b.N; i++ {
				s.hub.publish("app-id", "bench", protocol.TextFrame(payload), "")
				waitWritten(dc, base+per*int64(i+1))
			}
		})
	}
}

// BenchmarkPublish is the whole publish path of the HTTP API: a signed
// POST /apps/{id}/events (signature check, JSON decode, validation, one
// encoding, fan-out) to N subscribers.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run("subscribers="+strconv.Itoa(n), func(b *testing.B) {
			s, dc := benchServer(b, n)
			h := s.Handler()
			body := `{"name":"e","channel":"bench","data":"{\"hello\":\"world\"}"}`
			target := benchSignedURL("POST", "/apps/app-id/events", body)
			frameLen := int64(len(protocol.TextFrame(protocol.AppendEvent(nil, "e", "bench", `{"hello":"world"}`, ""))))
			b.ReportAllocs()
			b.ResetTimer()
			base := dc.n.Load()
			for i := 0; i < b.N; i++ {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("POST", target, strings.NewReader(body)))
				if rec.Code != 200 {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				waitWritten(dc, base+frameLen*int64(n)*int64(i+1))
			}
		})
	}
}

// benchSignedURL signs a request the way the Pusher SDKs do; the
// timestamp stays valid for the 10 minutes the API accepts.
func benchSignedURL(method, path, body string) string {
	q := url.Values{}
	q.Set("auth_key", "app-key")
	q.Set("auth_timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	q.Set("auth_version", "1.0")
	sum := md5.Sum([]byte(body))
	q.Set("body_md5", hex.EncodeToString(sum[:]))
	q.Set("auth_signature", protocol.Sign("app-secret", protocol.RequestString(method, path, q)))
	return path + "?" + q.Encode()
}
