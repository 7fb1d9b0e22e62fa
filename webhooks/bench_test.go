package webhooks

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// BenchmarkEmit measures webhook throughput with a fast receiver on
// 127.0.0.1: events/s accepted into the durable queue (Emit until the
// commit that holds the last one) and events/s delivered with a 2xx, with
// the default batching (50 ms, 100 events). It reports the commits too: a
// burst must not cost one fsync per event.
func BenchmarkEmit(b *testing.B) {
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer rcv.Close()
	db, err := storage.Open(filepath.Join(b.TempDir(), "sockudo.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.PutApp(app(storage.Webhook{URL: rcv.URL + "/hook"})); err != nil {
		b.Fatal(err)
	}
	d, err := New(Config{AllowPrivateTargets: true}, db, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer d.Close(context.Background())

	data := `{"message":"hello from a client event, about a hundred bytes of payload","n":0}`
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for d.Stats().Buffered >= DefaultMaxBuffered/2 {
			time.Sleep(50 * time.Microsecond) // let the write-behind catch up (a bounded buffer)
		}
		d.Emit(Event{App: testApp, Name: ClientEvent, Channel: "private-chat-" + strconv.Itoa(i%100),
			Event: "client-msg", Data: data, SocketID: "123.456"})
	}
	for d.Stats().Queued < uint64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	queued := time.Since(start)
	for d.Stats().Sent < uint64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	sent := time.Since(start)
	b.StopTimer()
	s := d.Stats()
	b.ReportMetric(float64(b.N)/queued.Seconds(), "queued/s")
	b.ReportMetric(float64(b.N)/sent.Seconds(), "delivered/s")
	b.ReportMetric(float64(b.N)/float64(s.Commits), "events/commit")
}
