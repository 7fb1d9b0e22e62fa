package protocol

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendEvent(t *testing.T) {
	tcs := []struct {
		name                         string
		dst                          string
		event, channel, data, userID string
		want                         string
	}{
		{
			name:  "REST channel event",
			event: "my-event", channel: "my-channel", data: `{"hello":"world"}`,
			want: `{"event":"my-event","channel":"my-channel","data":"{\"hello\":\"world\"}"}`,
		},
		{
			name:  "subscription succeeded",
			event: "pusher_internal:subscription_succeeded", channel: "my-channel", data: `{}`,
			want: `{"event":"pusher_internal:subscription_succeeded","channel":"my-channel","data":"{}"}`,
		},
		{
			name:  "presence subscription succeeded",
			event: "pusher_internal:subscription_succeeded", channel: "presence-x",
			data: `{"presence":{"ids":["1","2"],"hash":{"1":{"name":"A"},"2":{"name":"B"}},"count":2}}`,
			want: `{"event":"pusher_internal:subscription_succeeded","channel":"presence-x",` +
				`"data":"{\"presence\":{\"ids\":[\"1\",\"2\"],\"hash\":{\"1\":{\"name\":\"A\"},\"2\":{\"name\":\"B\"}},\"count\":2}}"}`,
		},
		{
			name:  "member removed",
			event: "pusher_internal:member_removed", channel: "presence-x", data: `{"user_id":"2"}`,
			want: `{"event":"pusher_internal:member_removed","channel":"presence-x","data":"{\"user_id\":\"2\"}"}`,
		},
		{
			name:  "subscription count",
			event: "pusher_internal:subscription_count", channel: "c", data: `{"subscription_count":3}`,
			want: `{"event":"pusher_internal:subscription_count","channel":"c","data":"{\"subscription_count\":3}"}`,
		},
		{
			name:  "client event with user_id",
			event: "client-x", channel: "presence-y", data: `{"name":"x"}`, userID: "7",
			want: `{"event":"client-x","channel":"presence-y","data":"{\"name\":\"x\"}","user_id":"7"}`,
		},
		{
			name:  "server to user",
			event: "e", channel: "#server-to-user-42", data: "plain text",
			want: `{"event":"e","channel":"#server-to-user-42","data":"plain text"}`,
		},
		{
			name:  "no channel",
			event: "pusher:connection_established", data: `{}`,
			want: `{"event":"pusher:connection_established","data":"{}"}`,
		},
		{
			name:  "empty data still sent",
			event: "e", channel: "c",
			want: `{"event":"e","channel":"c","data":""}`,
		},
		{
			name:  "laravel event name",
			event: `App\Events\OrderShipped`, channel: "private-orders.1", data: `{"id":1}`,
			want: `{"event":"App\\Events\\OrderShipped","channel":"private-orders.1","data":"{\"id\":1}"}`,
		},
		{
			name:  "appends to dst",
			dst:   "prefix:",
			event: "e", channel: "c", data: "d",
			want: `prefix:{"event":"e","channel":"c","data":"d"}`,
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendEvent([]byte(tc.dst), tc.event, tc.channel, tc.data, tc.userID)
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			var env struct {
				Event   string  `json:"event"`
				Channel *string `json:"channel"`
				Data    string  `json:"data"`
				UserID  *string `json:"user_id"`
			}
			if err := json.Unmarshal(got[len(tc.dst):], &env); err != nil {
				t.Fatalf("output is not JSON: %v", err)
			}
			if env.Event != tc.event || env.Data != tc.data ||
				(env.Channel == nil) != (tc.channel == "") || (env.UserID == nil) != (tc.userID == "") {
				t.Fatalf("decoded envelope %+v does not match the input", env)
			}
		})
	}
}

func TestAppendEventNoData(t *testing.T) {
	tcs := []struct {
		name           string
		event, channel string
		want           string
	}{
		{name: "cache miss", event: "pusher:cache_miss", channel: "cache-x", want: `{"event":"pusher:cache_miss","channel":"cache-x"}`},
		{name: "no channel", event: "e", want: `{"event":"e"}`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if got := AppendEventNoData(nil, tc.event, tc.channel); string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestAppendError(t *testing.T) {
	tcs := []struct {
		name    string
		code    Code
		message string
		channel string
		want    string
	}{
		{
			name: "fatal code", code: CodeAppNotFound, message: "App key x does not exist.",
			want: `{"event":"pusher:error","data":{"code":4001,"message":"App key x does not exist."}}`,
		},
		{
			name: "code none renders null", code: CodeNone, message: "Existing subscription to channel my-channel",
			want: `{"event":"pusher:error","data":{"code":null,"message":"Existing subscription to channel my-channel"}}`,
		},
		{
			name: "rate limit", code: CodeClientEventRateLimit, message: "Client event rejected due to rate limit",
			want: `{"event":"pusher:error","data":{"code":4301,"message":"Client event rejected due to rate limit"}}`,
		},
		{
			name: "with channel", code: CodeNone, message: "m", channel: "private-chat",
			want: `{"event":"pusher:error","channel":"private-chat","data":{"code":null,"message":"m"}}`,
		},
		{
			name: "message escaped", code: CodeNone, message: "Invalid key in subscription auth data: '\"x\\'\n",
			want: `{"event":"pusher:error","data":{"code":null,"message":"Invalid key in subscription auth data: '\"x\\'\n"}}`,
		},
		{
			name: "empty message", code: CodeReconnect,
			want: `{"event":"pusher:error","data":{"code":4200,"message":""}}`,
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendError(nil, tc.code, tc.message, tc.channel)
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Fatalf("output is not valid JSON: %s", got)
			}
		})
	}
}

func TestConnectionEstablished(t *testing.T) {
	tcs := []struct {
		name     string
		socketID string
		timeout  int
		want     string
	}{
		{
			name: "spec golden", socketID: "123456.7890123", timeout: 120,
			want: `{"event":"pusher:connection_established","data":"{\"socket_id\":\"123456.7890123\",\"activity_timeout\":120}"}`,
		},
		{
			name: "other timeout", socketID: "1.2", timeout: 30,
			want: `{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":30}"}`,
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendConnectionEstablished(nil, tc.socketID, tc.timeout)
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			// pusher-js parses the frame, then the data string.
			var env struct{ Event, Data string }
			if err := json.Unmarshal(got, &env); err != nil {
				t.Fatal(err)
			}
			var data struct {
				SocketID        string `json:"socket_id"`
				ActivityTimeout int    `json:"activity_timeout"`
			}
			if err := json.Unmarshal([]byte(env.Data), &data); err != nil {
				t.Fatal(err)
			}
			if data.SocketID != tc.socketID || data.ActivityTimeout != tc.timeout {
				t.Fatalf("decoded %+v", data)
			}
		})
	}
}

func TestFixedFrames(t *testing.T) {
	tcs := []struct {
		name string
		got  []byte
		want string
	}{
		{name: "pong", got: payloadOf(t, PongFrame), want: `{"event":"pusher:pong","data":"{}"}`},
		{name: "ping", got: payloadOf(t, PingFrame), want: `{"event":"pusher:ping","data":"{}"}`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != tc.want {
				t.Fatalf("got %s, want %s", tc.got, tc.want)
			}
		})
	}
}

func TestAppendString(t *testing.T) {
	tcs := []struct {
		name string
		in   string
		want string
	}{
		{name: "empty", in: "", want: `""`},
		{name: "plain", in: "hello world", want: `"hello world"`},
		{name: "quote", in: `a"b`, want: `"a\"b"`},
		{name: "backslash", in: `a\b`, want: `"a\\b"`},
		{name: "newline", in: "a\nb", want: `"a\nb"`},
		{name: "carriage return", in: "a\rb", want: `"a\rb"`},
		{name: "tab", in: "a\tb", want: `"a\tb"`},
		{name: "nul", in: "\x00", want: `"\u0000"`},
		{name: "backspace and form feed", in: "\b\f", want: `"\u0008\u000c"`},
		{name: "unit separator", in: "\x1f", want: `"\u001f"`},
		{name: "space is not escaped", in: " ", want: `" "`},
		{name: "DEL is not escaped", in: "\x7f", want: "\"\x7f\""},
		{name: "html is not escaped", in: "<script>&</script>", want: `"<script>&</script>"`},
		{name: "slash is not escaped", in: "a/b", want: `"a/b"`},
		{name: "two-byte utf8", in: "café", want: `"café"`},
		{name: "four-byte utf8", in: "😀", want: `"😀"`},
		{name: "line separator", in: "a\u2028b", want: `"a\u2028b"`},
		{name: "paragraph separator", in: "a\u2029b", want: `"a\u2029b"`},
		{name: "other U+20xx untouched", in: "\u2027\u202a", want: "\"\u2027\u202a\""},
		{name: "replacement char passes", in: "\ufffd", want: "\"\ufffd\""},
		{name: "invalid byte", in: "a\xffb", want: `"a\ufffdb"`},
		{name: "truncated sequence at end", in: "a\xc3", want: `"a\ufffd"`},
		{name: "each invalid byte replaced", in: "\xed\xa0\x80", want: `"\ufffd\ufffd\ufffd"`},
		{name: "overlong encoding", in: "\xc0\xaf", want: `"\ufffd\ufffd"`},
		{name: "mixed", in: "\"\x01é\xfe\u2028", want: `"\"\u0001é\ufffd\u2028"`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendString(nil, tc.in)
			if string(got) != tc.want {
				t.Fatalf("AppendString(%q) = %s, want %s", tc.in, got, tc.want)
			}
			checkStringRoundTrip(t, tc.in, got)
		})
	}
}

// Every string decodes back with encoding/json to what encoding/json itself
// would produce for it: the input when it is valid UTF-8, else the input
// with each invalid byte turned into U+FFFD.
func TestAppendStringRoundTrip(t *testing.T) {
	var all []byte
	for c := 0; c < 256; c++ {
		all = append(all, byte(c))
	}
	ins := []string{
		string(all),
		strings.Repeat("\x00\x1f\"\\", 10),
		"\u2028\u2029\u2028",
		"{\"a\":\"b\\\"c\"}",
		"\xf0\x9f\x98",             // truncated 4-byte sequence
		"\xf4\x90\x80\x80",         // above U+10FFFF
		"\xef\xbf\xbe\xef\xbf\xbf", // U+FFFE U+FFFF are valid UTF-8
		strings.Repeat("é", 1000) + "\xff",
	}
	for c := 0; c < 256; c++ {
		ins = append(ins, string([]byte{byte(c)}), "x"+string([]byte{byte(c)})+"y")
	}
	for _, in := range ins {
		got := AppendString([]byte("prefix"), in)
		if !strings.HasPrefix(string(got), "prefix") {
			t.Fatalf("AppendString dropped dst for %q", in)
		}
		checkStringRoundTrip(t, in, got[len("prefix"):])
	}
}

// checkStringRoundTrip checks that out, the encoding of in, is a valid JSON
// string literal that decodes as encoding/json's own encoding of in does.
func checkStringRoundTrip(t testing.TB, in string, out []byte) {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("AppendString(%q) = %s: not valid JSON", in, out)
	}
	var got string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("AppendString(%q) = %s: %v", in, out, err)
	}
	want := in
	if !utf8.ValidString(in) {
		ref, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
	}
	if got != want {
		t.Fatalf("AppendString(%q) decodes to %q, want %q", in, got, want)
	}
	if strings.ContainsAny(string(out), "\u2028\u2029") {
		t.Fatalf("AppendString(%q) = %s: raw U+2028/U+2029 in output", in, out)
	}
}

func BenchmarkAppendEvent(b *testing.B) {
	data := `{"message":"hello world","user":{"id":42,"name":"Mr. Pusher"},"tags":["a","b","c"]}`
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(len(AppendEvent(nil, "client-message", "presence-room.1", data, "42"))))
	for b.Loop() {
		buf = AppendEvent(buf[:0], "client-message", "presence-room.1", data, "42")
	}
}
