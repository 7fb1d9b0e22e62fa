package webhooks

import (
	"strings"
	"testing"
)

// TestSignatureVector checks body building and signing against the test
// vector of shared/spec/pusher-protocol.md §5.3 (from pusher-http-node).
func TestSignatureVector(t *testing.T) {
	body := appendBody(nil, 1403175510755, [][]byte{[]byte(`{"channel":"test_channel","name":"channel_vacated"}`)})
	if want := `{"time_ms":1403175510755,"events":[{"channel":"test_channel","name":"channel_vacated"}]}`; string(body) != want {
		t.Fatalf("body = %s\nwant %s", body, want)
	}
	if got, want := sign("tofu", body), "c17257e92037cd7de407ebc1ed174ceb7b2e518db127f44411b9ffc4f5b28cc5"; got != want {
		t.Fatalf("signature = %s, want %s", got, want)
	}
}

func TestEventEncoding(t *testing.T) {
	tcs := []struct {
		name string
		e    Event
		want string
	}{
		{"channel_occupied", Event{Name: ChannelOccupied, Channel: "c"}, `{"name":"channel_occupied","channel":"c"}`},
		{"channel_vacated", Event{Name: ChannelVacated, Channel: "c"}, `{"name":"channel_vacated","channel":"c"}`},
		{"member_added", Event{Name: MemberAdded, Channel: "presence-c", UserID: "u"},
			`{"name":"member_added","channel":"presence-c","user_id":"u"}`},
		{"member_removed", Event{Name: MemberRemoved, Channel: "presence-c", UserID: "7"},
			`{"name":"member_removed","channel":"presence-c","user_id":"7"}`},
		{"client_event on presence carries user_id",
			Event{Name: ClientEvent, Channel: "presence-c", Event: "client-x", Data: `{"a":"<b>"}`, SocketID: "1.2", UserID: "u"},
			`{"name":"client_event","channel":"presence-c","event":"client-x","data":"{\"a\":\"<b>\"}","socket_id":"1.2","user_id":"u"}`},
		{"client_event on private has no user_id",
			Event{Name: ClientEvent, Channel: "private-c", Event: "client-x", Data: `"s"`, SocketID: "1.2", UserID: "u"},
			`{"name":"client_event","channel":"private-c","event":"client-x","data":"\"s\"","socket_id":"1.2"}`},
		{"client_event with empty data keeps the key",
			Event{Name: ClientEvent, Channel: "private-c", Event: "client-x", SocketID: "1.2"},
			`{"name":"client_event","channel":"private-c","event":"client-x","data":"","socket_id":"1.2"}`},
		{"cache_miss", Event{Name: CacheMiss, Channel: "cache-c"}, `{"name":"cache_miss","channel":"cache-c"}`},
		{"subscription_count is an integer", Event{Name: SubscriptionCount, Channel: "c", SubscriptionCount: 3},
			`{"name":"subscription_count","channel":"c","subscription_count":3}`},
		{"subscription_count zero", Event{Name: SubscriptionCount, Channel: "c"},
			`{"name":"subscription_count","channel":"c","subscription_count":0}`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(tc.e.encode()); got != tc.want {
				t.Fatalf("encode = %s\nwant     %s", got, tc.want)
			}
		})
	}
}

func FuzzEventEncoding(f *testing.F) {
	f.Add("client-x", `{"a":1}`, "presence-c", "u")
	f.Add("client-\u2028", "\x00\xff", "private-c", "")
	f.Fuzz(func(t *testing.T, name, data, channel, user string) {
		e := Event{Name: ClientEvent, Channel: channel, Event: name, Data: data, UserID: user, SocketID: "1.1"}
		b := appendBody(nil, 1, [][]byte{e.encode(), e.encode()})
		var got received
		if err := jsonUnmarshal(b, &got); err != nil {
			t.Fatalf("body is not JSON: %v: %q", err, b)
		}
		if len(got.Events) != 2 || got.Events[0].Data == nil {
			t.Fatalf("decoded %+v", got)
		}
	})
}

// TestEventTypeBits: every event type has its own single bit, inside the
// block of its family, so adding one (a push event) cannot collide.
func TestEventTypeBits(t *testing.T) {
	var seen eventMask
	for _, et := range eventTypes {
		if et.bit == 0 || et.bit&(et.bit-1) != 0 {
			t.Errorf("%s: mask %#x is not one bit", et.name, et.bit)
		}
		if seen&et.bit != 0 {
			t.Errorf("%s: bit %#x taken twice", et.name, et.bit)
		}
		seen |= et.bit
		block := realtimeEvents
		if strings.HasPrefix(et.name, "push_") {
			block = pushEvents
		}
		if et.bit&block == 0 {
			t.Errorf("%s: bit %#x outside its block %#x", et.name, et.bit, block)
		}
		if bit(et.name) != et.bit {
			t.Errorf("bit(%q) = %#x, want %#x", et.name, bit(et.name), et.bit)
		}
	}
	if seen != allEvents || realtimeEvents&pushEvents != 0 {
		t.Errorf("allEvents %#x, rows %#x", allEvents, seen)
	}
	if bit("nope") != 0 {
		t.Error("an unknown name has a bit")
	}
}

// TestRealtimeEncodingIgnoresFields: Fields belongs to push events; a
// realtime event's object stays exactly Pusher's, byte for byte, whatever
// Fields holds.
func TestRealtimeEncodingIgnoresFields(t *testing.T) {
	extra := map[string]any{"name": "evil", "channel": "other", "extra": 1}
	tcs := []struct {
		e    Event
		want string
	}{
		{Event{Name: ChannelOccupied, Channel: "c"}, `{"name":"channel_occupied","channel":"c"}`},
		{Event{Name: MemberAdded, Channel: "presence-c", UserID: "u"},
			`{"name":"member_added","channel":"presence-c","user_id":"u"}`},
		{Event{Name: ClientEvent, Channel: "presence-c", Event: "client-x", Data: `{"a":"<b>"}`, SocketID: "1.2", UserID: "u"},
			`{"name":"client_event","channel":"presence-c","event":"client-x","data":"{\"a\":\"<b>\"}","socket_id":"1.2","user_id":"u"}`},
		{Event{Name: SubscriptionCount, Channel: "c", SubscriptionCount: 3},
			`{"name":"subscription_count","channel":"c","subscription_count":3}`},
	}
	for _, tc := range tcs {
		t.Run(tc.e.Name, func(t *testing.T) {
			for _, fields := range []map[string]any{nil, extra} {
				e := tc.e
				e.Fields = fields
				if got := string(e.encode()); got != tc.want {
					t.Fatalf("Fields %v: encode = %s\nwant     %s", fields, got, tc.want)
				}
			}
		})
	}
}

func TestPushEventEncoding(t *testing.T) {
	tcs := []struct {
		name string
		e    Event
		want string
	}{
		{"publish finished, keys in order, nested counters",
			Event{Name: PushPublishFinished, Fields: map[string]any{
				"state": "finished", "publish_id": "pub_1", "created_at": int64(1700000000000),
				"finished_at": int64(1700000001500),
				"counters": map[string]any{"planned": 3, "sent": 1, "failed": 1, "invalidated": 1, "retried": 0,
					"per_provider":     map[string]any{"apns": map[string]int{"sent": 1}},
					"errors_by_reason": map[string]int{"Unregistered": 1}},
			}},
			`{"name":"push_publish_finished","counters":{"errors_by_reason":{"Unregistered":1},"failed":1,` +
				`"invalidated":1,"per_provider":{"apns":{"sent":1}},"planned":3,"retried":0,"sent":1},` +
				`"created_at":1700000000000,"finished_at":1700000001500,"publish_id":"pub_1","state":"finished"}`},
		{"a name field cannot rename the event",
			Event{Name: PushDeviceInvalidated, Fields: map[string]any{"name": "channel_occupied", "device_id": "d<1>",
				"platform": "apns", "reason": "Unregistered"}},
			`{"name":"push_device_invalidated","device_id":"d<1>","platform":"apns","reason":"Unregistered"}`},
		{"no channel, even if set", Event{Name: PushCredentialUnhealthy, Channel: "c",
			Fields: map[string]any{"provider": "fcm", "version": 2, "reason": "invalid_grant"}},
			`{"name":"push_credential_unhealthy","provider":"fcm","reason":"invalid_grant","version":2}`},
		{"no fields", Event{Name: PushCredentialUnhealthy}, `{"name":"push_credential_unhealthy"}`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.e.encodePush()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("encodePush = %s\nwant         %s", got, tc.want)
			}
		})
	}
	if _, err := (&Event{Name: PushPublishFinished, Fields: map[string]any{"bad": make(chan int)}}).encodePush(); err == nil ||
		!strings.Contains(err.Error(), `field "bad"`) {
		t.Fatalf("an unencodable field: err = %v", err)
	}
}

func FuzzPushEventEncoding(f *testing.F) {
	f.Add("device_id", "d-1")
	f.Add("name", "\x00\xff\u2028")
	f.Fuzz(func(t *testing.T, key, value string) {
		e := Event{Name: PushDeviceInvalidated, Fields: map[string]any{key: value, "reason": value}}
		raw, err := e.encodePush()
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Events []map[string]any `json:"events"`
		}
		if err := jsonUnmarshal(appendBody(nil, 1, [][]byte{raw}), &body); err != nil {
			t.Fatalf("body is not JSON: %v: %q", err, raw)
		}
		if len(body.Events) != 1 || body.Events[0]["name"] != PushDeviceInvalidated {
			t.Fatalf("decoded %v from %q", body.Events, raw)
		}
	})
}
