package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

var testLimits = TriggerLimits{EventNameLength: 200, PayloadBytes: 10 << 10, Channels: 3, ChannelNameLength: 200}

func TestTriggerValidate(t *testing.T) {
	tcs := []struct {
		name       string
		body       string
		one        bool
		wantStatus int
		wantMsg    string
		wantChs    []string
		wantData   string
	}{
		{name: "channel", one: true, body: `{"name":"e","channel":"a","data":"x"}`, wantChs: []string{"a"}, wantData: "x"},
		{name: "channels and channel", one: true, body: `{"name":"e","channels":["a","b"],"channel":"c","data":{"k":1}}`,
			wantChs: []string{"a", "b", "c"}, wantData: `{"k":1}`},
		{name: "no name", one: true, body: `{"channel":"a","data":"x"}`, wantStatus: 400, wantMsg: "missing event name"},
		{name: "reserved name", one: true, body: `{"name":"pusher:x","channel":"a","data":"x"}`, wantStatus: 400, wantMsg: "invalid event name"},
		{name: "no data", one: true, body: `{"name":"e","channel":"a"}`, wantStatus: 400, wantMsg: "missing data"},
		{name: "data too large", one: true, body: `{"name":"e","channel":"a","data":"` + strings.Repeat("x", 10<<10+1) + `"}`,
			wantStatus: 413, wantMsg: "exceeds the allowed maximum (10240 bytes)"},
		{name: "no channel", one: true, body: `{"name":"e","data":"x"}`, wantStatus: 400, wantMsg: "missing channel"},
		{name: "batch event with two channels", body: `{"name":"e","channels":["a","b"],"data":"x"}`, wantStatus: 400, wantMsg: "one channel"},
		{name: "too many channels", one: true, body: `{"name":"e","channels":["a","b","c","d"],"data":"x"}`, wantStatus: 400, wantMsg: "at most 3"},
		{name: "bad channel name, cut", one: true, body: `{"name":"e","channel":"` + strings.Repeat("!", 100) + `","data":"x"}`,
			wantStatus: 400, wantMsg: `invalid channel name "` + strings.Repeat("!", 64) + `…"`},
		{name: "encrypted among others", one: true, body: `{"name":"e","channels":["a","private-encrypted-b"],"data":"x"}`,
			wantStatus: 400, wantMsg: "encrypted channel"},
		{name: "bad socket_id", one: true, body: `{"name":"e","channel":"a","data":"x","socket_id":"1.x"}`, wantStatus: 400, wantMsg: "invalid socket_id"},
		{name: "socket_id", one: true, body: `{"name":"e","channel":"a","data":"x","socket_id":"123.456"}`, wantChs: []string{"a"}, wantData: "x"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseTrigger([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			chs, data, bad := e.Validate(testLimits, tc.one)
			if tc.wantStatus != 0 {
				if bad == nil || bad.Status != tc.wantStatus || !strings.Contains(bad.Message, tc.wantMsg) {
					t.Fatalf("got %v, want %d %q", bad, tc.wantStatus, tc.wantMsg)
				}
				return
			}
			if bad != nil || strings.Join(chs, ",") != strings.Join(tc.wantChs, ",") || data != tc.wantData {
				t.Fatalf("got %v %q %v", chs, data, bad)
			}
		})
	}
	if _, err := ParseTrigger([]byte(`{`)); err != ErrInvalidJSON {
		t.Fatalf("bad JSON: %v", err)
	}
	if _, err := ParseBatch([]byte(`{"batch":{}}`)); err != ErrInvalidJSON {
		t.Fatalf("batch not a list: %v", err)
	}
}

func TestValidSocketID(t *testing.T) {
	for s, want := range map[string]bool{"1.2": true, "123456.7890123": true, "": false, ".": false, "1.": false,
		".2": false, "1.2.3": false, "a.1": false, "1.2 ": false, "١.٢": false} {
		if got := ValidSocketID(s); got != want {
			t.Errorf("ValidSocketID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestAPIBodies(t *testing.T) {
	count := Info{SubscriptionCount: true, UserCount: true}
	tcs := []struct {
		name string
		got  []byte
		want string
	}{
		{name: "no channels is an object", got: ChannelsBody(nil, count), want: `{"channels":{}}`},
		{name: "channels", got: ChannelsBody([]ChannelInfo{{Name: "pub", Subscriptions: 2}, {Name: "presence-p", Subscriptions: 3, Users: 1}}, count),
			want: `{"channels":{"pub":{"subscription_count":2},"presence-p":{"user_count":1,"subscription_count":3}}}`},
		{name: "channels without info", got: ChannelsBody([]ChannelInfo{{Name: "pub", Subscriptions: 2}}, Info{}), want: `{"channels":{"pub":{}}}`},
		{name: "unoccupied channel", got: ChannelBody(ChannelInfo{Name: "x"}, Info{}), want: `{"occupied":false}`},
		{name: "channel with cache", got: ChannelBody(ChannelInfo{Name: "cache-x", Subscriptions: 1,
			Cache: &CachedEvent{Event: "e", Data: `{"a":1}`, TTLSeconds: 30}}, Info{SubscriptionCount: true}),
			want: `{"occupied":true,"subscription_count":1,"cache":{"event":"e","data":"{\"a\":1}","ttl":30}}`},
		{name: "batch", got: BatchBody([]ChannelInfo{{Name: "pub", Subscriptions: 2}, {}}, []*Info{&count, nil}),
			want: `{"batch":[{"subscription_count":2},{}]}`},
		{name: "users", got: UsersBody([]string{"1", `"q"`}), want: `{"users":[{"id":"1"},{"id":"\"q\""}]}`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != tc.want {
				t.Fatalf("got  %s\nwant %s", tc.got, tc.want)
			}
			if !json.Valid(tc.got) {
				t.Fatalf("not JSON: %s", tc.got)
			}
		})
	}
}

// FuzzTriggerBody: any body is either refused with a status or yields
// channels that pass the name rules and data within the limit; nothing
// panics.
func FuzzTriggerBody(f *testing.F) {
	for _, s := range []string{`{"name":"e","channel":"a","data":"x"}`, `{"name":"e","channels":["a","b"],"data":{"k":[1]}}`,
		`{"batch":[{"name":"e","channel":"a","data":"x"}]}`, `{"name":"","data":null}`, `[]`, `{"data":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, _ := ParseBatch(body)
		if e, err := ParseTrigger(body); err == nil {
			events = append(events, e)
		}
		for _, e := range events {
			chs, data, bad := e.Validate(testLimits, true)
			if bad != nil {
				if bad.Status != 400 && bad.Status != 413 {
					t.Fatalf("status %d", bad.Status)
				}
				continue
			}
			if len(data) > testLimits.PayloadBytes || len(chs) == 0 || len(chs) > testLimits.Channels {
				t.Fatalf("accepted %d channels, %d bytes", len(chs), len(data))
			}
			for _, ch := range chs {
				if !ValidChannelName(ch, testLimits.ChannelNameLength) {
					t.Fatalf("accepted channel %q", ch)
				}
			}
		}
	})
}
