package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
)

// payloadOf checks that frame is one final, unmasked text frame and
// returns its payload.
func payloadOf(t testing.TB, frame []byte) []byte {
	t.Helper()
	op, p := decodeFrame(t, frame)
	if op != 0x81 {
		t.Fatalf("first byte %#x, want 0x81 (final text frame)", op)
	}
	return p
}

// decodeFrame is an independent RFC 6455 §5.2 reader for unmasked frames.
func decodeFrame(t testing.TB, f []byte) (first byte, payload []byte) {
	t.Helper()
	if len(f) < 2 {
		t.Fatalf("frame of %d bytes", len(f))
	}
	if f[1]&0x80 != 0 {
		t.Fatal("server frames must not be masked")
	}
	n, rest := uint64(f[1]&0x7f), f[2:]
	switch n {
	case 126:
		n, rest = uint64(binary.BigEndian.Uint16(rest)), rest[2:]
	case 127:
		n, rest = binary.BigEndian.Uint64(rest), rest[8:]
	}
	if uint64(len(rest)) != n {
		t.Fatalf("header says %d payload bytes, frame has %d", n, len(rest))
	}
	return f[0], rest
}

func TestTextFrameLengths(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xffff, 0x10000, 70000} {
		payload := bytes.Repeat([]byte{'x'}, n)
		f := TextFrame(payload)
		if got := payloadOf(t, f); !bytes.Equal(got, payload) {
			t.Fatalf("length %d: payload differs", n)
		}
		wantHeader := 2
		if n >= 126 {
			wantHeader = 4
		}
		if n > 0xffff {
			wantHeader = 10
		}
		if len(f) != n+wantHeader {
			t.Fatalf("length %d: frame of %d bytes, want the minimal %d-byte header", n, len(f), wantHeader)
		}
	}
}

func TestCloseFrame(t *testing.T) {
	tcs := []struct {
		name, reason string
		wantReason   string
	}{
		{name: "short", reason: "Over capacity", wantReason: "Over capacity"},
		{name: "cut to fit a control frame", reason: strings.Repeat("r", 200), wantReason: strings.Repeat("r", 123)},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			first, p := decodeFrame(t, CloseFrame(CodeOverCapacity, tc.reason))
			if first != 0x88 {
				t.Fatalf("first byte %#x, want 0x88 (close)", first)
			}
			if code := binary.BigEndian.Uint16(p); code != 4100 || string(p[2:]) != tc.wantReason {
				t.Fatalf("close %d %q", code, p[2:])
			}
		})
	}
}

// The message frames carry exactly the payloads pusher-js parses.
func TestMessageFrames(t *testing.T) {
	tcs := []struct {
		name  string
		frame []byte
		want  string
	}{
		{name: "subscription succeeded", frame: SubscriptionSucceededFrame("my-channel"),
			want: `{"event":"pusher_internal:subscription_succeeded","channel":"my-channel","data":"{}"}`},
		{name: "presence succeeded", frame: PresenceSucceededFrame("presence-x",
			[]Member{{UserID: "1", Info: json.RawMessage(`{"name":"A"}`)}, {UserID: "2"}}),
			want: `{"event":"pusher_internal:subscription_succeeded","channel":"presence-x",` +
				`"data":"{\"presence\":{\"ids\":[\"1\",\"2\"],\"hash\":{\"1\":{\"name\":\"A\"},\"2\":null},\"count\":2}}"}`},
		{name: "presence succeeded, empty", frame: PresenceSucceededFrame("presence-x", nil),
			want: `{"event":"pusher_internal:subscription_succeeded","channel":"presence-x",` +
				`"data":"{\"presence\":{\"ids\":[],\"hash\":{},\"count\":0}}"}`},
		{name: "member added", frame: MemberAddedFrame("presence-x", Member{UserID: "7", Info: json.RawMessage(`{"a":1}`)}),
			want: `{"event":"pusher_internal:member_added","channel":"presence-x","data":"{\"user_id\":\"7\",\"user_info\":{\"a\":1}}"}`},
		{name: "member added without info", frame: MemberAddedFrame("presence-x", Member{UserID: "7"}),
			want: `{"event":"pusher_internal:member_added","channel":"presence-x","data":"{\"user_id\":\"7\"}"}`},
		{name: "member removed", frame: MemberRemovedFrame("presence-x", "7"),
			want: `{"event":"pusher_internal:member_removed","channel":"presence-x","data":"{\"user_id\":\"7\"}"}`},
		{name: "subscription count", frame: SubscriptionCountFrame("c", 3),
			want: `{"event":"pusher_internal:subscription_count","channel":"c","data":"{\"subscription_count\":3}"}`},
		{name: "cache miss", frame: CacheMissFrame("cache-x"),
			want: `{"event":"pusher:cache_miss","channel":"cache-x"}`},
		{name: "signin success", frame: SigninSuccessFrame(`{"id":"1"}`),
			want: `{"event":"pusher:signin_success","data":{"user_data":"{\"id\":\"1\"}"}}`},
		{name: "watchlist both", frame: WatchlistFrame([]string{"1", "2"}, []string{"3"}),
			want: `{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"online","user_ids":["1","2"]},{"name":"offline","user_ids":["3"]}]}}`},
		{name: "watchlist offline only", frame: WatchlistFrame(nil, []string{"3"}),
			want: `{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"offline","user_ids":["3"]}]}}`},
		{name: "event with user_id", frame: EventFrame("client-x", "presence-y", `{"n":1}`, "7"),
			want: `{"event":"client-x","channel":"presence-y","data":"{\"n\":1}","user_id":"7"}`},
		{name: "error", frame: ErrorFrame(CodeNone, "bad", "c"),
			want: `{"event":"pusher:error","channel":"c","data":{"code":null,"message":"bad"}}`},
		{name: "connection established", frame: ConnectionEstablishedFrame("1.2", 30),
			want: `{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":30}"}`},
		{name: "error value", frame: ErrOverQuota.Frame(), want: string(ErrOverQuota.Payload())},
		{name: "subscription error value", frame: (&SubscriptionError{Status: 401, Message: "no"}).Frame("private-a"),
			want: string((&SubscriptionError{Status: 401, Message: "no"}).Payload("private-a"))},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got := payloadOf(t, tc.frame)
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Fatalf("not valid JSON: %s", got)
			}
		})
	}
}

func BenchmarkEventFrame(b *testing.B) {
	data := `{"message":"hello world","user":{"id":42,"name":"Mr. Pusher"},"tags":["a","b","c"]}`
	b.ReportAllocs()
	for b.Loop() {
		_ = EventFrame("client-message", "presence-room.1", data, "42")
	}
}
