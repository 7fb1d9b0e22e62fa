package webhooks

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// TestRequestOnTheWire reads the raw request bytes: method, exact header
// names and values, and a signature over exactly the body sent.
func TestRequestOnTheWire(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type rawReq struct {
		head string
		req  *http.Request
		body []byte
	}
	got := make(chan rawReq, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head.String())))
		if err != nil {
			return
		}
		body := make([]byte, req.ContentLength)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
		got <- rawReq{head.String(), req, body}
	}()

	url := "http://" + ln.Addr().String() + "/hook?token=abc"
	db, _ := openDB(t, app(storage.Webhook{URL: url, Headers: map[string]string{"authorization": "Bearer xyz"}}))
	var logs logBuffer
	d := startDispatcher(t, testConfig(), db, testOpts{log: &logs})
	d.Emit(clientEvent("presence-room", `{"hello":"world"}`))

	var r rawReq
	select {
	case r = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no request")
	}
	if r.req.Method != "POST" || r.req.URL.String() != "/hook?token=abc" {
		t.Fatalf("request line: %s %s", r.req.Method, r.req.URL)
	}
	for _, line := range []string{
		"\r\nContent-Type: application/json\r\n",
		"\r\nX-Pusher-Key: app-key\r\n",
		"\r\nX-Pusher-Signature: " + sign(testSecret, r.body) + "\r\n",
		"\r\nAuthorization: Bearer xyz\r\n",
	} {
		if !strings.Contains(r.head, line) {
			t.Errorf("request head lacks %q:\n%s", strings.TrimSpace(line), r.head)
		}
	}
	if n := strings.Count(strings.ToLower(r.head), "\r\ncontent-type:"); n != 1 {
		t.Errorf("%d Content-Type headers", n)
	}
	var body received
	if err := jsonUnmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Events) != 1 || *body.Events[0].Data != `{"hello":"world"}` || body.Time == 0 {
		t.Fatalf("body: %s", r.body)
	}
	waitFor(t, "the entry to be deleted", func() bool { return d.Stats().QueueDepth == 0 })
	if s := d.Stats(); s.Queued != 1 || s.Sent != 1 || s.Failed != 0 {
		t.Fatalf("stats = %+v", s)
	}
	// Neither the secret nor the signature nor the URL's query is logged.
	for _, secret := range []string{testSecret, sign(testSecret, r.body), "token=abc", "xyz"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log contains %q:\n%s", secret, logs.String())
		}
	}
}

func TestFiltersPerTarget(t *testing.T) {
	all, members, orders := newReceiver(t), newReceiver(t), newReceiver(t)
	db, _ := openDB(t, app(
		storage.Webhook{URL: all.URL + "/all"},
		storage.Webhook{URL: members.URL + "/members", EventTypes: []string{MemberAdded, MemberRemoved}},
		storage.Webhook{URL: orders.URL + "/orders", EventTypes: []string{ChannelOccupied, ClientEvent},
			Filter: &storage.WebhookFilter{ChannelPrefix: "private-", ChannelPattern: `-orders$`}},
	))
	d := startDispatcher(t, Config{AllowPrivateTargets: true, GracePeriod: -1, Batching: Batching{Disabled: true}}, db, testOpts{})
	emit := []Event{
		{App: testApp, Name: ChannelOccupied, Channel: "private-eu-orders"},
		{App: testApp, Name: ChannelOccupied, Channel: "private-chat"},
		{App: testApp, Name: MemberAdded, Channel: "presence-a", UserID: "u1"},
		clientEvent("private-eu-orders", "1"),
		{App: testApp, Name: MemberRemoved, Channel: "presence-a", UserID: "u1"},
		{App: testApp, Name: ChannelOccupied, Channel: "public-orders"},
		{App: "other-app", Name: ChannelOccupied, Channel: "private-x-orders"},
		// Marker: every target takes it, and it comes last.
		{App: testApp, Name: MemberAdded, Channel: "private-m-orders", UserID: "marker"},
	}
	for _, e := range emit {
		d.Emit(e)
	}
	// Each target has its own queue, delivered in order.
	if got, want := all.nextEvents(t, 7), []string{"channel_occupied private-eu-orders", "channel_occupied private-chat",
		"member_added presence-a", "client_event private-eu-orders", "member_removed presence-a",
		"channel_occupied public-orders", "member_added private-m-orders"}; !reflect.DeepEqual(got, want) {
		t.Errorf("all got %v\nwant %v", got, want)
	}
	if got, want := members.nextEvents(t, 3), []string{"member_added presence-a", "member_removed presence-a",
		"member_added private-m-orders"}; !reflect.DeepEqual(got, want) {
		t.Errorf("members got %v\nwant %v", got, want)
	}
	// The marker is a member_added: orders does not take it, so wait for
	// its queue to drain instead.
	if got, want := orders.nextEvents(t, 2), []string{"channel_occupied private-eu-orders",
		"client_event private-eu-orders"}; !reflect.DeepEqual(got, want) {
		t.Errorf("orders got %v\nwant %v", got, want)
	}
	waitFor(t, "queues to drain", func() bool { return d.Stats().QueueDepth == 0 })
	if n := len(orders.reqs); n != 0 {
		t.Errorf("orders got %d extra requests", n)
	}
}

// TestPushEvents: push events reach only the targets that list them, with
// their fields next to "name" and no channel, signed like channel events;
// a target without event_types keeps getting channel events only, and a
// channel filter does not hold push events back.
func TestPushEvents(t *testing.T) {
	finished, plain, devices := newReceiver(t), newReceiver(t), newReceiver(t)
	db, _ := openDB(t, app(
		storage.Webhook{URL: finished.URL + "/finished", EventTypes: []string{PushPublishFinished}},
		storage.Webhook{URL: plain.URL + "/plain"},
		storage.Webhook{URL: devices.URL + "/devices", EventTypes: []string{PushDeviceInvalidated, ChannelOccupied},
			Filter: &storage.WebhookFilter{ChannelPrefix: "presence-"}},
	))
	d := startDispatcher(t, testConfig(), db, testOpts{})

	counters := map[string]any{"planned": 2, "sent": 1, "failed": 0, "invalidated": 1, "retried": 0,
		"per_provider":     map[string]any{"fcm": map[string]int{"sent": 1, "invalidated": 1}},
		"errors_by_reason": map[string]int{"UNREGISTERED": 1}}
	d.Emit(Event{App: testApp, Name: PushPublishFinished, Fields: map[string]any{"publish_id": "pub_1",
		"state": "finished", "counters": counters, "created_at": int64(1700000000000), "finished_at": int64(1700000000250)}})
	d.Emit(Event{App: testApp, Name: PushDeviceInvalidated, Fields: map[string]any{"device_id": "dev_1",
		"platform": "fcm", "user_id": "u1", "reason": "UNREGISTERED"}})
	d.Emit(Event{App: testApp, Name: PushCredentialUnhealthy, Fields: map[string]any{"provider": "apns",
		"version": 3, "reason": "InvalidProviderToken"}})
	d.Emit(Event{App: "other-app", Name: PushPublishFinished, Fields: map[string]any{"publish_id": "pub_2"}})
	// Not JSON: dropped and counted, nothing sent.
	d.Emit(Event{App: testApp, Name: PushPublishFinished, Fields: map[string]any{"publish_id": "pub_3",
		"bad": func() {}}})
	// Marker, last: plain and devices take it.
	d.Emit(Event{App: testApp, Name: ChannelOccupied, Channel: "presence-marker"})

	r := finished.next(t)
	if got, want := string(r.body), `{"time_ms":`+fmt.Sprint(r.Time)+`,"events":[{"name":"push_publish_finished",`+
		`"counters":{"errors_by_reason":{"UNREGISTERED":1},"failed":0,"invalidated":1,"per_provider":{"fcm":`+
		`{"invalidated":1,"sent":1}},"planned":2,"retried":0,"sent":1},"created_at":1700000000000,`+
		`"finished_at":1700000000250,"publish_id":"pub_1","state":"finished"}]}`; got != want {
		t.Errorf("body %s\nwant %s", got, want)
	}
	if r.header.Get("X-Pusher-Key") != testKey || r.header.Get("X-Pusher-Signature") != sign(testSecret, r.body) ||
		r.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", r.header)
	}
	if got, want := plain.nextEvents(t, 1), []string{"channel_occupied presence-marker"}; !reflect.DeepEqual(got, want) {
		t.Errorf("target without event_types got %v, want %v", got, want)
	}
	r = devices.next(t)
	if got, want := string(r.body), `{"time_ms":`+fmt.Sprint(r.Time)+`,"events":[{"name":"push_device_invalidated",`+
		`"device_id":"dev_1","platform":"fcm","reason":"UNREGISTERED","user_id":"u1"}]}`; got != want {
		t.Errorf("body %s\nwant %s", got, want)
	}
	if r.header.Get("X-Pusher-Signature") != sign(testSecret, r.body) {
		t.Error("push event not signed with the app secret")
	}
	if got, want := devices.nextEvents(t, 1), []string{"channel_occupied presence-marker"}; !reflect.DeepEqual(got, want) {
		t.Errorf("devices got %v, want %v", got, want)
	}
	waitFor(t, "queues to drain", func() bool { return d.Stats().QueueDepth == 0 })
	for name, rcv := range map[string]*receiver{"finished": finished, "plain": plain, "devices": devices} {
		if n := len(rcv.reqs); n != 0 {
			t.Errorf("%s got %d extra requests", name, n)
		}
	}
	if s := d.Stats(); s.Queued != 4 || s.Sent != 4 || s.Dropped != 1 {
		t.Errorf("stats = %+v, want 4 queued and sent, 1 dropped", s)
	}
}

func TestBatching(t *testing.T) {
	batched, single := newReceiver(t), newReceiver(t)
	db, _ := openDB(t, app(
		storage.Webhook{URL: batched.URL + "/b"},
		storage.Webhook{URL: single.URL + "/s", Batching: &storage.WebhookBatching{Enabled: new(bool)}},
	))
	cfg := Config{AllowPrivateTargets: true, Batching: Batching{Duration: 200 * time.Millisecond, Size: 3}}
	d := startDispatcher(t, cfg, db, testOpts{})
	for i := range 7 {
		d.Emit(clientEvent("private-c", fmt.Sprint(i)))
	}
	var sizes []int
	var data []string
	for len(data) < 7 {
		r := batched.next(t)
		sizes = append(sizes, len(r.Events))
		for _, e := range r.Events {
			data = append(data, *e.Data)
		}
		if got := r.header.Get("X-Pusher-Signature"); got != sign(testSecret, r.body) {
			t.Fatalf("bad signature on a batch")
		}
	}
	if !reflect.DeepEqual(data, []string{"0", "1", "2", "3", "4", "5", "6"}) {
		t.Fatalf("batched events out of order: %v", data)
	}
	if !reflect.DeepEqual(sizes, []int{3, 3, 1}) {
		t.Fatalf("batch sizes %v, want [3 3 1]", sizes)
	}
	for i := range 7 {
		if r := single.next(t); len(r.Events) != 1 || *r.Events[0].Data != fmt.Sprint(i) {
			t.Fatalf("unbatched request %d: %s", i, r.body)
		}
	}
}

// gateFixture is a dispatcher on a fake clock with one target taking every
// event, one event per request.
func gateFixture(t *testing.T) (*Dispatcher, *receiver, *fakeClock) {
	t.Helper()
	rcv := newReceiver(t)
	db, _ := openDB(t, app(storage.Webhook{URL: rcv.URL}))
	fc := newFakeClock()
	d := startDispatcher(t, testConfig(), db, testOpts{clock: fc})
	return d, rcv, fc
}

// marker emits an event every target takes and returns the events received
// up to and including it.
func marker(t *testing.T, d *Dispatcher, rcv *receiver) []string {
	t.Helper()
	d.Emit(Event{App: testApp, Name: ChannelOccupied, Channel: "marker"})
	var got []string
	for !slices.Contains(got, "channel_occupied marker") {
		got = append(got, rcv.next(t).names()...)
	}
	return got
}

func TestGracePeriod(t *testing.T) {
	d, rcv, fc := gateFixture(t)

	// A channel that comes back within the grace period: nothing is sent.
	d.Emit(Event{App: testApp, Name: ChannelVacated, Channel: "flap"})
	d.Emit(Event{App: testApp, Name: MemberRemoved, Channel: "presence-p", UserID: "u"})
	fc.Advance(2 * time.Second)
	d.Emit(Event{App: testApp, Name: ChannelOccupied, Channel: "flap"})
	d.Emit(Event{App: testApp, Name: MemberAdded, Channel: "presence-p", UserID: "u"})
	fc.Advance(2 * time.Second)
	if got := marker(t, d, rcv); !reflect.DeepEqual(got, []string{"channel_occupied marker"}) {
		t.Fatalf("flapping channel sent %v", got)
	}

	// A channel that stays empty: vacated after exactly the grace period.
	d.Emit(Event{App: testApp, Name: ChannelVacated, Channel: "gone"})
	d.Emit(Event{App: testApp, Name: MemberRemoved, Channel: "presence-p", UserID: "v"})
	start := fc.Now()
	fc.Advance(3*time.Second - time.Millisecond)
	if got := marker(t, d, rcv); !reflect.DeepEqual(got, []string{"channel_occupied marker"}) {
		t.Fatalf("sent before the grace period ended: %v", got)
	}
	fc.Advance(time.Millisecond)
	r := rcv.next(t)
	if got := r.names(); !reflect.DeepEqual(got, []string{"channel_vacated gone"}) {
		t.Fatalf("got %v, want the vacated event", got)
	}
	// time_ms is when the channel was vacated, not when it was decided.
	if r.Time != start.UnixMilli() {
		t.Errorf("time_ms = %d, want %d", r.Time, start.UnixMilli())
	}
	if got := rcv.next(t); !reflect.DeepEqual(got.names(), []string{"member_removed presence-p"}) ||
		got.Events[0].UserID != "v" {
		t.Fatalf("got %s, want member_removed of v", got.body)
	}
}

func TestCacheMissDeduplicated(t *testing.T) {
	d, rcv, fc := gateFixture(t)
	for range 5 { // five subscribers miss the cache together
		d.Emit(Event{App: testApp, Name: CacheMiss, Channel: "cache-a"})
	}
	d.Emit(Event{App: testApp, Name: CacheMiss, Channel: "cache-b"})
	if got := marker(t, d, rcv); !reflect.DeepEqual(got, []string{"cache_miss cache-a", "cache_miss cache-b",
		"channel_occupied marker"}) {
		t.Fatalf("got %v", got)
	}
	// After the window, or once the channel was vacated, a miss is new.
	fc.Advance(DefaultCacheMissWindow)
	d.Emit(Event{App: testApp, Name: CacheMiss, Channel: "cache-a"})
	d.Emit(Event{App: testApp, Name: ChannelVacated, Channel: "cache-b"})
	d.Emit(Event{App: testApp, Name: ChannelOccupied, Channel: "cache-b"})
	d.Emit(Event{App: testApp, Name: CacheMiss, Channel: "cache-b"})
	if got := marker(t, d, rcv); !reflect.DeepEqual(got, []string{"cache_miss cache-a", "cache_miss cache-b",
		"channel_occupied marker"}) {
		t.Fatalf("got %v", got)
	}
}

func TestSubscriptionCountThrottled(t *testing.T) {
	d, rcv, fc := gateFixture(t)
	count := func(ch string, n int) {
		d.Emit(Event{App: testApp, Name: SubscriptionCount, Channel: ch, SubscriptionCount: n})
	}
	counts := func(rs []received) []int {
		var out []int
		for _, r := range rs {
			for _, e := range r.Events {
				if e.SubscriptionCount != nil {
					out = append(out, *e.SubscriptionCount)
				}
			}
		}
		return out
	}
	// At or below 100 subscribers, every change goes (once queued, only
	// the latest waiting count is kept: see TestChurnCoalesced).
	for n := 1; n <= 3; n++ {
		count("small", n)
		if got := counts([]received{rcv.next(t)}); !reflect.DeepEqual(got, []int{n}) {
			t.Fatalf("small channel count %v, want %d", got, n)
		}
	}
	// Above 100: the first goes, then the latest once per 5 s.
	count("big", 150)
	count("big", 151)
	count("big", 152)
	if got := counts([]received{rcv.next(t)}); !reflect.DeepEqual(got, []int{150}) {
		t.Fatalf("first big count %v", got)
	}
	fc.Advance(DefaultCountThrottle)
	if got := counts([]received{rcv.next(t)}); !reflect.DeepEqual(got, []int{152}) {
		t.Fatalf("throttled count %v, want the latest (152)", got)
	}
	count("big", 160)
	fc.Advance(DefaultCountThrottle - time.Millisecond)
	if got := marker(t, d, rcv); !reflect.DeepEqual(got, []string{"channel_occupied marker"}) {
		t.Fatalf("count sent within the window: %v", got)
	}
	// Dropping to 100 or below sends at once and forgets the pending 160.
	count("big", 90)
	if got := counts([]received{rcv.next(t)}); !reflect.DeepEqual(got, []int{90}) {
		t.Fatalf("count after the drop %v", got)
	}
	fc.Advance(time.Hour)
	if got := marker(t, d, rcv); !reflect.DeepEqual(got, []string{"channel_occupied marker"}) {
		t.Fatalf("stale count sent: %v", got)
	}
}

// TestCloseDecidesPendingEvents: at shutdown the server vacates every
// channel; those events must not wait out a grace period that ends after
// the process did.
func TestCloseDecidesPendingEvents(t *testing.T) {
	db, path := openDB(t, app(storage.Webhook{URL: "http://127.0.0.1:1/unused"}))
	d, err := New(Config{AllowPrivateTargets: true}, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Not started: the delivery loops must not consume the queue.
	d.Emit(Event{App: testApp, Name: ChannelVacated, Channel: "a"})
	d.Emit(Event{App: testApp, Name: SubscriptionCount, Channel: "b", SubscriptionCount: 200})
	d.Emit(Event{App: testApp, Name: SubscriptionCount, Channel: "b", SubscriptionCount: 201})
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.Emit(Event{App: testApp, Name: ChannelOccupied, Channel: "after-close"})
	if s := d.Stats(); s.Dropped != 1 {
		t.Errorf("an event after Close was not dropped: %+v", s)
	}
	_ = db.Close()
	db, err = storage.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	head, err := db.WebhookHead(testApp, "http://127.0.0.1:1/unused", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range head {
		got = append(got, string(e.Event))
	}
	// 200 was sent at once (the first above 100), 201 when Close ended its
	// window; in one commit only the latest count of a channel is kept.
	want := []string{`{"name":"channel_vacated","channel":"a"}`,
		`{"name":"subscription_count","channel":"b","subscription_count":201}`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("queued at close:\n%v\nwant\n%v", got, want)
	}
}

// TestRestartResumesQueue: what was committed before a crash is delivered
// by the next process.
func TestRestartResumesQueue(t *testing.T) {
	rcv := newReceiver(t)
	rcv.respond(http.StatusServiceUnavailable, nil)
	url := rcv.URL + "/hook"
	db, path := openDB(t, app(storage.Webhook{URL: url}))
	d, err := New(Config{AllowPrivateTargets: true, Batching: Batching{Size: 10}}, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, crash := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		d.Emit(clientEvent("private-c", fmt.Sprint(i)))
	}
	waitFor(t, "every event to be committed", func() bool { return d.Stats().Queued == n })
	rcv.next(t) // at least one failed attempt

	// A crash: the delivery loops stop, nothing is flushed or closed in
	// order; the file is what survives.
	crash()
	d.wg.Wait()
	_ = db.Close()

	db2, err := storage.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for len(rcv.reqs) > 0 {
		<-rcv.reqs
	}
	rcv.respond(http.StatusOK, nil)
	d2 := startDispatcher(t, Config{AllowPrivateTargets: true, Batching: Batching{Size: 10}}, db2, testOpts{})
	if got := d2.Stats().QueueDepth; got != n {
		t.Fatalf("resumed queue depth %d, want %d", got, n)
	}
	seen := map[string]bool{}
	for len(seen) < n {
		for _, e := range rcv.next(t).Events {
			seen[*e.Data] = true
		}
	}
	waitFor(t, "the queue to drain", func() bool { return d2.Stats().QueueDepth == 0 })
	// The first process's Close (at cleanup) must not touch db2.
	_ = d.Close(context.Background())
}

func TestReplayAndOrphans(t *testing.T) {
	rcv := newReceiver(t)
	rcv.respond(http.StatusBadRequest, nil)
	url := rcv.URL + "/hook"
	db, path := openDB(t, app(storage.Webhook{URL: url}))
	d, err := New(testConfig(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.Emit(clientEvent("private-c", "a"))
	d.Emit(clientEvent("private-c", "b"))
	waitFor(t, "two dead letters", func() bool { return d.Stats().DeadLettered == 2 })
	dead, err := d.DeadLetters(testApp, 0)
	if err != nil || len(dead) != 2 || dead[0].Reason != "status 400 Bad Request" || dead[0].Attempts != 1 {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}
	if s := d.Stats(); s.Failed != 2 || s.Retried != 0 || s.QueueDepth != 0 {
		t.Fatalf("stats after 400s: %+v", s)
	}

	// Replay one by id once the receiver is fixed.
	rcv.respond(http.StatusOK, nil)
	<-rcv.reqs
	<-rcv.reqs
	n, skipped, err := d.Replay(testApp, []uint64{dead[1].ID})
	if err != nil || n != 1 || skipped != 0 {
		t.Fatalf("Replay = %d, %d, %v", n, skipped, err)
	}
	if r := rcv.next(t); *r.Events[0].Data != "b" {
		t.Fatalf("replayed %s", r.body)
	}
	waitFor(t, "the replayed entry to be deleted", func() bool { return d.Stats().QueueDepth == 0 })
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The app drops the target and gets a new one; queued entries of the
	// old one become dead letters at start, and replaying them is refused.
	if err := db.EnqueueWebhooks([]storage.WebhookEntry{{App: testApp, URL: url, Event: []byte(`{"name":"x"}`),
		CreatedAt: time.Now(), EnqueuedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutApp(app(storage.Webhook{URL: url + "/v2"})); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	db2, err := storage.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	d2 := startDispatcher(t, testConfig(), db2, testOpts{})
	dead, _ = d2.DeadLetters(testApp, 0)
	if len(dead) != 2 || dead[1].Reason != "target no longer configured" {
		t.Fatalf("dead letters after the target was removed: %+v", dead)
	}
	if n, skipped, err := d2.Replay(testApp, nil); n != 0 || skipped != 2 || err != nil {
		t.Fatalf("Replay to a removed target = %d, %d, %v", n, skipped, err)
	}
	if q := d2.Queues(testApp); len(q) != 1 || q[0].URL != url+"/v2" || q[0].Pending != 0 {
		t.Fatalf("Queues = %+v", q)
	}
}

// TestReload: targets added, changed and removed while running, and a
// rotated secret, take effect without a restart.
func TestReload(t *testing.T) {
	first, second := newReceiver(t), newReceiver(t)
	db, _ := openDB(t, app(storage.Webhook{URL: first.URL, EventTypes: []string{ChannelOccupied}}))
	d := startDispatcher(t, testConfig(), db, testOpts{})
	d.Emit(clientEvent("private-c", "not wanted"))
	d.Emit(Event{App: testApp, Name: ChannelOccupied, Channel: "a"})
	if got := first.next(t).names(); !reflect.DeepEqual(got, []string{"channel_occupied a"}) {
		t.Fatalf("first got %v", got)
	}

	// Change the first target's types, add a second, rotate the secret.
	a := app(storage.Webhook{URL: first.URL, EventTypes: []string{ClientEvent}}, storage.Webhook{URL: second.URL})
	a.Secret = "rotated-secret"
	if err := db.PutApp(a); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	d.Emit(clientEvent("private-c", "wanted"))
	r := first.next(t)
	if *r.Events[0].Data != "wanted" || r.header.Get("X-Pusher-Signature") != sign("rotated-secret", r.body) {
		t.Fatalf("after reload first got %s (signed with the new secret?)", r.body)
	}
	if got := second.next(t).names(); !reflect.DeepEqual(got, []string{"client_event private-c"}) {
		t.Fatalf("second got %v", got)
	}

	// Remove the second target while it has a backlog: its entries become
	// dead letters.
	second.respond(http.StatusServiceUnavailable, nil)
	d.Emit(Event{App: testApp, Name: ChannelOccupied, Channel: "b"})
	second.next(t) // failed; now in backoff with the event queued
	if err := db.PutApp(app(storage.Webhook{URL: first.URL, EventTypes: []string{ClientEvent}})); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	dead, _ := d.DeadLetters(testApp, 0)
	if len(dead) != 1 || dead[0].URL != second.URL || dead[0].Reason != "target no longer configured" {
		t.Fatalf("dead letters = %+v", dead)
	}
	if q := d.Queues(testApp); len(q) != 1 || q[0].URL != first.URL {
		t.Fatalf("Queues = %+v", q)
	}

	// An invalid stored target is refused and the running config kept.
	if err := db.PutApp(app(storage.Webhook{URL: "ftp://x/"})); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err == nil {
		t.Fatal("Reload accepted an invalid target")
	}
	d.Emit(clientEvent("private-c", "still"))
	if r := first.next(t); *r.Events[0].Data != "still" {
		t.Fatalf("got %s", r.body)
	}
}

// TestCrashReportsVacatedAndRemoved: a process that dies with channels
// occupied never reports them vacated; the next start does, through the
// grace period, unless the channel comes back within it.
func TestCrashReportsVacatedAndRemoved(t *testing.T) {
	rcv := newReceiver(t)
	hook := storage.Webhook{URL: rcv.URL, EventTypes: []string{ChannelVacated, MemberRemoved}}
	db, path := openDB(t, app(hook))
	cfg := Config{AllowPrivateTargets: true, Batching: Batching{Disabled: true}, GracePeriod: time.Second}
	d, err := New(cfg, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, crash := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range []Event{
		{App: testApp, Name: ChannelOccupied, Channel: "presence-room"},
		{App: testApp, Name: MemberAdded, Channel: "presence-room", UserID: "u1"},
		{App: testApp, Name: ChannelOccupied, Channel: "public"},
		{App: testApp, Name: ChannelOccupied, Channel: "back-soon"},
		{App: testApp, Name: ChannelOccupied, Channel: "left"},
		{App: testApp, Name: ChannelVacated, Channel: "left"}, // vacated before the crash: nothing to repeat
	} {
		d.Emit(e)
	}
	// "left" is reported after the grace period: by then every occupancy
	// change emitted before it has been committed (in an earlier round).
	if r := rcv.next(t); len(r.Events) != 1 || r.Events[0].Name != ChannelVacated || r.Events[0].Channel != "left" {
		t.Fatalf("first process sent %v", r.names())
	}
	crash()
	d.wg.Wait()
	_ = db.Close()

	db2, err := storage.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	fc := newFakeClock()
	d2 := startDispatcher(t, cfg, db2, testOpts{clock: fc})
	d2.Emit(Event{App: testApp, Name: ChannelOccupied, Channel: "back-soon"}) // a client reconnected in time
	// The gate sleeps until the grace period of the orphans ends.
	if due := fc.waitArmed(t, 1)[0]; due.Sub(fc.Now()) != time.Second {
		t.Fatalf("orphans decided after %s, want the 1s grace period", due.Sub(fc.Now()))
	}
	fc.Advance(time.Second)
	// "left" may come again: its entry was delivered but perhaps not yet
	// deleted when the first process died (at least once).
	want := []string{"member_removed presence-room u1", "channel_vacated presence-room ", "channel_vacated public "}
	got := map[string]bool{}
	for n := 0; n < len(want); {
		for _, e := range rcv.next(t).Events {
			k := e.Name + " " + e.Channel + " " + e.UserID
			if k == "channel_vacated left " {
				continue
			}
			if got[k] {
				t.Fatalf("%q reported twice", k)
			}
			got[k] = true
			n++
		}
	}
	for _, w := range want {
		if !got[w] {
			t.Fatalf("missing %q in %v (back-soon came back within the grace period)", w, got)
		}
	}
	_ = d.Close(context.Background())
}
