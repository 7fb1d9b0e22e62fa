package webhooks

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/sockudo/sockudo/storage"
)

// TestQueueDepthBounded is issue 8's probe with the receiver down: every
// new channel queues a channel_occupied. The queue keeps the newest
// MaxQueueDepth entries, the oldest become dead letters (themselves bounded
// per app) and are counted, and the file stops growing.
func TestQueueDepthBounded(t *testing.T) {
	const maxQueued, maxDead = 100, 300
	cfg := testConfig()
	cfg.MaxQueueDepth, cfg.MaxDeadLetters = maxQueued, maxDead
	rcv := newReceiver(t)
	fc := newFakeClock()
	rcv.respond(http.StatusServiceUnavailable, nil)
	db, path := openDB(t, app(storage.Webhook{URL: rcv.URL, EventTypes: []string{ChannelOccupied}}))
	d := startDispatcher(t, cfg, db, testOpts{clock: fc})

	emit := func(from, to int) {
		for i := from; i < to; i++ {
			d.Emit(Event{App: testApp, Name: ChannelOccupied, Channel: fmt.Sprintf("anon-%d", i)})
		}
		waitFor(t, "the events to be committed", func() bool {
			s := d.Stats()
			return s.Buffered == 0 && s.Queued == uint64(to)
		})
	}
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}

	emit(0, 1000)
	s := d.Stats()
	if s.QueueDepth != maxQueued || s.QueueFull != 1000-maxQueued || s.DeadLettered != 1000-maxQueued {
		t.Fatalf("after 1000 events: depth %d, queue_full %d, dead-lettered %d; want %d, %d, %d", s.QueueDepth,
			s.QueueFull, s.DeadLettered, maxQueued, 1000-maxQueued, 1000-maxQueued)
	}
	if qs, _ := db.WebhookQueues(); len(qs) != 1 || qs[0].Len != maxQueued {
		t.Fatalf("stored queues %+v, want one of %d entries", qs, maxQueued)
	}
	dead, err := d.DeadLetters(testApp, 0)
	if err != nil || len(dead) != maxDead {
		t.Fatalf("%d dead letters (%v), want %d", len(dead), err, maxDead)
	}
	// The oldest went first: the newest dead letter is the event just
	// before the queue's head, and the queue holds the newest events.
	if !strings.HasPrefix(dead[0].Reason, storage.ReasonQueueFull) ||
		!strings.Contains(string(dead[maxDead-1].Event), `"anon-899"`) {
		t.Fatalf("dead letters %s (%s) … %s", dead[0].Event, dead[0].Reason, dead[maxDead-1].Event)
	}
	head, _ := db.WebhookHead(testApp, rcv.URL, maxQueued)
	if !strings.Contains(string(head[0].Event), `"anon-900"`) || !strings.Contains(string(head[maxQueued-1].Event), `"anon-999"`) {
		t.Fatalf("queue holds %s … %s, want anon-900 … anon-999", head[0].Event, head[maxQueued-1].Event)
	}

	// Five times more traffic leaves the file about where it was: bbolt
	// reuses the pages of the entries it dropped. (Unbounded, these 6,000
	// entries take about 1 MiB more.)
	before := size()
	emit(1000, 6000)
	after := size()
	t.Logf("file: %d KiB after 1,000 events, %d KiB after 6,000", before>>10, after>>10)
	if after > before+256<<10 {
		t.Fatalf("file grew from %d to %d bytes with the queue bounded", before, after)
	}
	if s := d.Stats(); s.QueueDepth != maxQueued || s.QueueFull != 6000-maxQueued {
		t.Fatalf("after 6000 events: %+v", s)
	}
}

// downFixture is a dispatcher on a fake clock whose receiver failed the
// first event (the marker) and now waits out its backoff, so later events
// stay queued; recover lets the receiver answer 200 and returns every
// event it then receives up to a final marker.
func downFixture(t *testing.T) (d *Dispatcher, recover func() []string) {
	t.Helper()
	cfg := testConfig()
	cfg.GracePeriod = -1           // vacated at once: the churn reaches the queue
	cfg.RecoveryRate = math.Inf(1) // no pacing on the fake clock after the recovery
	d, rcv, fc := failingFixture(t, cfg, http.StatusServiceUnavailable, nil)
	d.Emit(clientEvent("private-first", "x"))
	if got := rcv.next(t).names(); !reflect.DeepEqual(got, []string{"client_event private-first"}) {
		t.Fatalf("first request %v", got)
	}
	retry := fc.waitArmed(t, 1)[0] // the loop sleeps until its retry
	return d, func() []string {
		rcv.respond(http.StatusOK, nil)
		fc.AdvanceTo(retry)
		got := rcv.nextEvents(t, 1) // the marker, again
		d.Emit(clientEvent("private-last", "x"))
		for got[len(got)-1] != "client_event private-last" {
			got = append(got, rcv.next(t).names()...)
		}
		return got
	}
}

// TestChurnCoalesced: with the receiver down, channels that come and go
// leave nothing queued, and only the latest subscription_count of a channel
// waits. What the receiver finally gets is still a consistent story: no
// channel_vacated without its channel_occupied, and the end state of every
// channel.
func TestChurnCoalesced(t *testing.T) {
	d, recover := downFixture(t)
	ev := func(name, ch string, n int) {
		d.Emit(Event{App: testApp, Name: name, Channel: ch, SubscriptionCount: n})
	}
	// An anonymous subscribe-unsubscribe loop over 500 new channels.
	for i := range 500 {
		ch := fmt.Sprintf("anon-%d", i)
		ev(ChannelOccupied, ch, 0)
		ev(SubscriptionCount, ch, 1)
		ev(SubscriptionCount, ch, 0)
		ev(ChannelVacated, ch, 0)
	}
	// A channel that stays, whose count changes, committed in two rounds.
	ev(ChannelOccupied, "stays", 0)
	ev(SubscriptionCount, "stays", 1)
	waitFor(t, "the commit", func() bool { return d.Stats().Buffered == 0 })
	ev(SubscriptionCount, "stays", 2)
	ev(SubscriptionCount, "stays", 3)
	waitFor(t, "the churn to be coalesced", func() bool {
		s := d.Stats()
		return s.Buffered == 0 && s.Coalesced == 500*4+2
	})
	if s := d.Stats(); s.QueueDepth != 3 {
		t.Fatalf("queue depth %d, want 3 (the first event, stays occupied, its last count)", s.QueueDepth)
	}
	// The head was on the wire when its vacated came: it cannot be annulled.
	got := recover()
	want := []string{"client_event private-first", "channel_occupied stays", "subscription_count stays",
		"client_event private-last"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("received %v, want %v", got, want)
	}
}

// TestVacatedOfSentOccupiedKept: a channel_occupied the loop already read
// (it may be on the wire) is never annulled, so its channel_vacated goes
// too.
func TestVacatedOfSentOccupiedKept(t *testing.T) {
	cfg := testConfig()
	cfg.GracePeriod = -1
	cfg.RecoveryRate = math.Inf(1)
	d, rcv, fc := failingFixture(t, cfg, http.StatusServiceUnavailable, nil)
	d.Emit(Event{App: testApp, Name: ChannelOccupied, Channel: "c"})
	if got := rcv.next(t).names(); !reflect.DeepEqual(got, []string{"channel_occupied c"}) {
		t.Fatalf("first request %v", got)
	}
	retry := fc.waitArmed(t, 1)[0]
	d.Emit(Event{App: testApp, Name: ChannelVacated, Channel: "c"})
	waitFor(t, "the vacated to be queued", func() bool { return d.Stats().QueueDepth == 2 })
	rcv.respond(http.StatusOK, nil)
	fc.AdvanceTo(retry)
	if got := rcv.nextEvents(t, 2); !reflect.DeepEqual(got, []string{"channel_occupied c", "channel_vacated c"}) {
		t.Fatalf("received %v", got)
	}
	if s := d.Stats(); s.Coalesced != 0 {
		t.Fatalf("coalesced %d", s.Coalesced)
	}
}

func TestCoalesceBatch(t *testing.T) {
	qa, qb := newQueue("a", "http://a", 1), newQueue("a", "http://b", 1)
	ta, tb := &target{q: qa}, &target{q: qb}
	e := func(t *target, name, ch string) pendingEntry {
		return pendingEntry{t: t, name: name, channel: ch, event: []byte(name + " " + ch + " " + t.q.url)}
	}
	occ, vac, cnt := ChannelOccupied, ChannelVacated, SubscriptionCount
	tcs := []struct {
		name      string
		in        []pendingEntry
		wantIndex []int
	}{
		{"occupied then vacated cancel out", []pendingEntry{e(ta, occ, "x"), e(ta, vac, "x")}, nil},
		{"vacated then occupied both go", []pendingEntry{e(ta, vac, "x"), e(ta, occ, "x")}, []int{0, 1}},
		{"counts of a cancelled channel go with it",
			[]pendingEntry{e(ta, occ, "x"), e(ta, cnt, "x"), e(ta, cnt, "x"), e(ta, vac, "x")}, nil},
		{"only the last count", []pendingEntry{e(ta, cnt, "x"), e(ta, cnt, "y"), e(ta, cnt, "x")}, []int{1, 2}},
		{"occupied again after the pair", []pendingEntry{e(ta, occ, "x"), e(ta, vac, "x"), e(ta, occ, "x")}, []int{2}},
		{"count before the occupied stays with its period",
			[]pendingEntry{e(ta, cnt, "x"), e(ta, vac, "x"), e(ta, occ, "x"), e(ta, vac, "x")}, []int{0, 1}},
		{"other channels and targets untouched",
			[]pendingEntry{e(ta, occ, "x"), e(tb, vac, "x"), e(ta, vac, "y"), e(ta, MemberAdded, "x")}, []int{0, 1, 2, 3}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got := coalesceBatch(tc.in, func(*queue, string) bool { return false })
			var want []pendingEntry
			for _, i := range tc.wantIndex {
				want = append(want, tc.in[i])
			}
			if len(got) != len(want) {
				t.Fatalf("kept %d entries, want %d", len(got), len(want))
			}
			for i := range got {
				if string(got[i].event) != string(want[i].event) {
					t.Fatalf("entry %d = %s, want %s", i, got[i].event, want[i].event)
				}
			}
		})
	}
}
