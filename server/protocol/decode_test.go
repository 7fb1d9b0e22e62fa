package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestDecode(t *testing.T) {
	tcs := []struct {
		name    string
		in      string
		want    Inbound
		wantErr error
	}{
		{
			name: "subscribe with object data",
			in:   `{"event":"pusher:subscribe","data":{"auth":"","channel":"chatrooms.5432132"}}`,
			want: Inbound{Event: "pusher:subscribe", Data: json.RawMessage(`{"auth":"","channel":"chatrooms.5432132"}`)},
		},
		{
			name: "subscribe with string data",
			in:   `{"event":"pusher:subscribe","data":"{\"channel\":\"x\"}"}`,
			want: Inbound{Event: "pusher:subscribe", Data: json.RawMessage(`"{\"channel\":\"x\"}"`)},
		},
		{
			name: "client event with channel",
			in:   `{"event":"client-typing","data":{"name":"x"},"channel":"private-chat"}`,
			want: Inbound{Event: "client-typing", Channel: "private-chat", Data: json.RawMessage(`{"name":"x"}`)},
		},
		{
			name: "ping without data",
			in:   `{"event":"pusher:ping"}`,
			want: Inbound{Event: "pusher:ping"},
		},
		{
			name: "null data kept raw",
			in:   `{"event":"client-x","channel":"private-c","data":null}`,
			want: Inbound{Event: "client-x", Channel: "private-c", Data: json.RawMessage(`null`)},
		},
		{
			name: "whitespace around frame and values",
			in:   " \n{ \"event\" : \"pusher:ping\" , \"data\" : { } }\t",
			want: Inbound{Event: "pusher:ping", Data: json.RawMessage(`{ }`)},
		},
		{
			name: "unknown fields ignored",
			in:   `{"event":"pusher:ping","data":{},"extra":[1,2,3]}`,
			want: Inbound{Event: "pusher:ping", Data: json.RawMessage(`{}`)},
		},
		{name: "empty input", in: ``, wantErr: ErrMalformed},
		{name: "not json", in: `hello`, wantErr: ErrMalformed},
		{name: "truncated object", in: `{"event":"pusher:ping"`, wantErr: ErrMalformed},
		{name: "missing value", in: `{"event":}`, wantErr: ErrMalformed},
		{name: "trailing garbage", in: `{"event":"pusher:ping"} x`, wantErr: ErrMalformed},
		{name: "two objects", in: `{"event":"a"}{"event":"b"}`, wantErr: ErrMalformed},
		{name: "missing event", in: `{"data":{"channel":"x"}}`, wantErr: ErrMalformed},
		{name: "empty event", in: `{"event":"","data":{}}`, wantErr: ErrMalformed},
		{name: "null event", in: `{"event":null}`, wantErr: ErrMalformed},
		{name: "numeric event", in: `{"event":1}`, wantErr: ErrMalformed},
		{name: "object event", in: `{"event":{}}`, wantErr: ErrMalformed},
		{name: "numeric channel", in: `{"event":"client-x","channel":5}`, wantErr: ErrMalformed},
		{name: "array", in: `[{"event":"pusher:ping"}]`, wantErr: ErrMalformed},
		{name: "string", in: `"pusher:ping"`, wantErr: ErrMalformed},
		{name: "number", in: `42`, wantErr: ErrMalformed},
		{name: "null", in: `null`, wantErr: ErrMalformed},
		{name: "bool", in: `true`, wantErr: ErrMalformed},
		{name: "empty object", in: `{}`, wantErr: ErrMalformed},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.in))
			checkErr(t, err, tc.wantErr)
			if tc.wantErr != nil {
				if !reflect.DeepEqual(got, Inbound{}) {
					t.Fatalf("got %+v with an error, want the zero Inbound", got)
				}
				return
			}
			if got.Event != tc.want.Event || got.Channel != tc.want.Channel || string(got.Data) != string(tc.want.Data) {
				t.Fatalf("got {%q %q %s}, want {%q %q %s}", got.Event, got.Channel, got.Data,
					tc.want.Event, tc.want.Channel, tc.want.Data)
			}
		})
	}
}

// The socket layer reuses its read buffer, so Decode must not alias it.
func TestDecodeCopiesData(t *testing.T) {
	buf := []byte(`{"event":"client-x","channel":"private-c","data":{"a":1}}`)
	in, err := Decode(buf)
	checkErr(t, err, nil)
	for i := range buf {
		buf[i] = 'X'
	}
	if in.Event != "client-x" || in.Channel != "private-c" || string(in.Data) != `{"a":1}` {
		t.Fatalf("decoded frame changed with its input buffer: %q %q %s", in.Event, in.Channel, in.Data)
	}
}

func TestParseSubscribe(t *testing.T) {
	const presenceData = `{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`
	tcs := []struct {
		name    string
		data    string
		want    Subscribe
		wantErr error
	}{
		{
			name: "public, object, empty auth (pusher-js)",
			data: `{"auth":"","channel":"chatrooms.5432132"}`,
			want: Subscribe{Channel: "chatrooms.5432132"},
		},
		{
			name: "private, object",
			data: `{"auth":"278d425bdf160c739803:58df8b0c","channel":"private-foobar"}`,
			want: Subscribe{Channel: "private-foobar", Auth: "278d425bdf160c739803:58df8b0c"},
		},
		{
			name: "private, data as JSON string",
			data: `"{\"auth\":\"k:s\",\"channel\":\"private-foobar\"}"`,
			want: Subscribe{Channel: "private-foobar", Auth: "k:s"},
		},
		{
			name: "data as JSON string with padding",
			data: `" {\"channel\":\"x\"}\n"`,
			want: Subscribe{Channel: "x"},
		},
		{
			name: "presence, channel_data string kept exactly",
			data: `{"auth":"k:s","channel_data":` + quote(presenceData) + `,"channel":"presence-foobar"}`,
			want: Subscribe{Channel: "presence-foobar", Auth: "k:s", ChannelData: presenceData},
		},
		{
			name: "presence, channel_data with odd spacing kept exactly",
			data: `{"auth":"k:s","channel_data":"{ \"user_id\" : \"1\" }","channel":"presence-x"}`,
			want: Subscribe{Channel: "presence-x", Auth: "k:s", ChannelData: `{ "user_id" : "1" }`},
		},
		{
			name: "presence, data as JSON string",
			data: quote(`{"auth":"k:s","channel_data":` + quote(presenceData) + `,"channel":"presence-foobar"}`),
			want: Subscribe{Channel: "presence-foobar", Auth: "k:s", ChannelData: presenceData},
		},
		{
			name: "channel_data missing",
			data: `{"auth":"k:s","channel":"private-x"}`,
			want: Subscribe{Channel: "private-x", Auth: "k:s"},
		},
		{
			name: "channel_data null (custom authorizers)",
			data: `{"auth":"k:s","channel_data":null,"channel":"private-x"}`,
			want: Subscribe{Channel: "private-x", Auth: "k:s"},
		},
		{
			name: "channel_data empty",
			data: `{"auth":"k:s","channel_data":"","channel":"private-x"}`,
			want: Subscribe{Channel: "private-x", Auth: "k:s"},
		},
		{
			name: "auth missing",
			data: `{"channel":"my-channel"}`,
			want: Subscribe{Channel: "my-channel"},
		},
		{
			name: "auth null",
			data: `{"auth":null,"channel":"my-channel"}`,
			want: Subscribe{Channel: "my-channel"},
		},
		{
			name: "unsubscribe carries only the channel",
			data: `{"channel":"presence-room"}`,
			want: Subscribe{Channel: "presence-room"},
		},
		{
			name: "name not validated here",
			data: `{"channel":"#not valid"}`,
			want: Subscribe{Channel: "#not valid"},
		},
		{name: "channel_data as object", data: `{"channel":"presence-x","channel_data":{"user_id":"1"}}`, wantErr: errAny},
		{name: "channel_data as number", data: `{"channel":"presence-x","channel_data":1}`, wantErr: errAny},
		{name: "auth as number", data: `{"channel":"private-x","auth":1}`, wantErr: errAny},
		{name: "auth as object", data: `{"channel":"private-x","auth":{}}`, wantErr: errAny},
		{name: "missing channel", data: `{"auth":""}`, wantErr: errAny},
		{name: "empty channel", data: `{"auth":"","channel":""}`, wantErr: errAny},
		{name: "null channel", data: `{"channel":null}`, wantErr: errAny},
		{name: "numeric channel", data: `{"channel":5}`, wantErr: ErrMalformed},
		{name: "empty object", data: `{}`, wantErr: errAny},
		{name: "missing data", data: ``, wantErr: ErrMissingData},
		{name: "null data", data: `null`, wantErr: ErrMissingData},
		{name: "whitespace data", data: "  ", wantErr: ErrMissingData},
		{name: "array data", data: `["x"]`, wantErr: errAny},
		{name: "number data", data: `1`, wantErr: errAny},
		{name: "string data not an object", data: `"private-x"`, wantErr: errAny},
		{name: "empty string data", data: `""`, wantErr: errAny},
		{name: "string data holding null", data: `"null"`, wantErr: errAny},
		{name: "string data holding a string", data: `"\"{\\\"channel\\\":\\\"x\\\"}\""`, wantErr: errAny},
		{name: "string data holding broken JSON", data: `"{\"channel\":"`, wantErr: ErrMalformed},
		{name: "broken JSON string", data: `"{\"channel\"`, wantErr: ErrMalformed},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSubscribe(json.RawMessage(tc.data))
			checkErr(t, err, tc.wantErr)
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseSignin(t *testing.T) {
	const userData = `{"id":"12345","user_info":{"name":"A"},"watchlist":["1","2"]}`
	tcs := []struct {
		name    string
		data    string
		want    Signin
		wantErr error
	}{
		{
			name: "object",
			data: `{"auth":"278d425bdf160c739803:4708d583","user_data":` + quote(userData) + `}`,
			want: Signin{Auth: "278d425bdf160c739803:4708d583", UserData: userData},
		},
		{
			name: "data as JSON string",
			data: quote(`{"auth":"k:s","user_data":` + quote(userData) + `}`),
			want: Signin{Auth: "k:s", UserData: userData},
		},
		{
			name: "user_data kept exactly",
			data: `{"auth":"k:s","user_data":"{ \"id\" : \"1\" }"}`,
			want: Signin{Auth: "k:s", UserData: `{ "id" : "1" }`},
		},
		{name: "missing auth", data: `{"user_data":"{\"id\":\"1\"}"}`, wantErr: errAny},
		{name: "empty auth", data: `{"auth":"","user_data":"{\"id\":\"1\"}"}`, wantErr: errAny},
		{name: "null auth", data: `{"auth":null,"user_data":"{\"id\":\"1\"}"}`, wantErr: errAny},
		{name: "missing user_data", data: `{"auth":"k:s"}`, wantErr: errAny},
		{name: "empty user_data", data: `{"auth":"k:s","user_data":""}`, wantErr: errAny},
		{name: "user_data as object", data: `{"auth":"k:s","user_data":{"id":"1"}}`, wantErr: errAny},
		{name: "auth as number", data: `{"auth":1,"user_data":"{\"id\":\"1\"}"}`, wantErr: errAny},
		{name: "missing data", data: ``, wantErr: ErrMissingData},
		{name: "null data", data: `null`, wantErr: ErrMissingData},
		{name: "array data", data: `[]`, wantErr: errAny},
		{name: "string data not an object", data: `"x"`, wantErr: errAny},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSignin(json.RawMessage(tc.data))
			checkErr(t, err, tc.wantErr)
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseUserData(t *testing.T) {
	tcs := []struct {
		name    string
		in      string
		want    User
		wantErr error
	}{
		{name: "id only", in: `{"id":"12345"}`, want: User{ID: "12345"}},
		{
			name: "user_info kept raw",
			in:   `{"id":"42","user_info":{"name":"Mr. Pusher","tags":[1,2]}}`,
			want: User{ID: "42", Info: json.RawMessage(`{"name":"Mr. Pusher","tags":[1,2]}`)},
		},
		{name: "user_info null is absent", in: `{"id":"42","user_info":null}`, want: User{ID: "42"}},
		{name: "user_info scalar kept", in: `{"id":"42","user_info":"x"}`, want: User{ID: "42", Info: json.RawMessage(`"x"`)}},
		{
			name: "watchlist of strings",
			in:   `{"id":"1","watchlist":["2","3"]}`,
			want: User{ID: "1", Watchlist: []string{"2", "3"}},
		},
		{
			name: "watchlist of strings and numbers",
			in:   `{"id":"1","watchlist":["2",3,10.5,"abc"]}`,
			want: User{ID: "1", Watchlist: []string{"2", "3", "10.5", "abc"}},
		},
		{name: "empty watchlist", in: `{"id":"1","watchlist":[]}`, want: User{ID: "1"}},
		{name: "null watchlist", in: `{"id":"1","watchlist":null}`, want: User{ID: "1"}},
		{name: "id of max length", in: `{"id":"` + long("a", MaxUserIDLength) + `"}`, want: User{ID: long("a", MaxUserIDLength)}},
		{name: "unknown fields ignored", in: `{"id":"1","x":{}}`, want: User{ID: "1"}},
		{name: "numeric id rejected", in: `{"id":12345}`, wantErr: errAny},
		{name: "missing id", in: `{"user_info":{}}`, wantErr: errAny},
		{name: "empty id", in: `{"id":""}`, wantErr: errAny},
		{name: "null id", in: `{"id":null}`, wantErr: errAny},
		{name: "bool id", in: `{"id":true}`, wantErr: errAny},
		{name: "object id", in: `{"id":{}}`, wantErr: errAny},
		{name: "id too long", in: `{"id":"` + long("a", MaxUserIDLength+1) + `"}`, wantErr: errAny},
		{name: "watchlist with empty id", in: `{"id":"1","watchlist":[""]}`, wantErr: errAny},
		{name: "watchlist with null", in: `{"id":"1","watchlist":[null]}`, wantErr: errAny},
		{name: "watchlist with object", in: `{"id":"1","watchlist":[{}]}`, wantErr: errAny},
		{name: "watchlist with bool", in: `{"id":"1","watchlist":[true]}`, wantErr: errAny},
		{name: "watchlist not an array", in: `{"id":"1","watchlist":"2"}`, wantErr: errAny},
		{name: "not JSON", in: `id=1`, wantErr: errAny},
		{name: "empty", in: ``, wantErr: errAny},
		{name: "array", in: `["1"]`, wantErr: errAny},
		{name: "null", in: `null`, wantErr: errAny},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseUserData(tc.in)
			checkErr(t, err, tc.wantErr)
			if got.ID != tc.want.ID || string(got.Info) != string(tc.want.Info) ||
				(got.Info == nil) != (tc.want.Info == nil) || !reflect.DeepEqual(got.Watchlist, tc.want.Watchlist) {
				t.Fatalf("got {%q %s %q}, want {%q %s %q}", got.ID, got.Info, got.Watchlist,
					tc.want.ID, tc.want.Info, tc.want.Watchlist)
			}
		})
	}
}

func TestParseChannelData(t *testing.T) {
	tcs := []struct {
		name    string
		in      string
		want    Member
		wantErr error
	}{
		{name: "string user_id", in: `{"user_id":"10"}`, want: Member{UserID: "10"}},
		{name: "numeric user_id becomes its text", in: `{"user_id":10}`, want: Member{UserID: "10"}},
		{
			name: "spec presence vector",
			in:   `{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`,
			want: Member{UserID: "10", Info: json.RawMessage(`{"name":"Mr. Pusher"}`)},
		},
		{name: "negative number", in: `{"user_id":-3}`, want: Member{UserID: "-3"}},
		{name: "float number kept as written", in: `{"user_id":10.5}`, want: Member{UserID: "10.5"}},
		{name: "big number within 2^53", in: `{"user_id":9007199254740993}`, want: Member{UserID: "9007199254740993"}},
		{name: "user_info null is absent", in: `{"user_id":"1","user_info":null}`, want: Member{UserID: "1"}},
		{name: "user_info array kept", in: `{"user_id":"1","user_info":[1]}`, want: Member{UserID: "1", Info: json.RawMessage(`[1]`)}},
		{name: "user_id of max length", in: `{"user_id":"` + long("x", MaxUserIDLength) + `"}`, want: Member{UserID: long("x", MaxUserIDLength)}},
		{name: "missing user_id", in: `{"user_info":{"name":"A"}}`, wantErr: errAny},
		{name: "empty user_id", in: `{"user_id":""}`, wantErr: errAny},
		{name: "null user_id", in: `{"user_id":null}`, wantErr: errAny},
		{name: "bool user_id", in: `{"user_id":true}`, wantErr: errAny},
		{name: "object user_id", in: `{"user_id":{"id":1}}`, wantErr: errAny},
		{name: "array user_id", in: `{"user_id":[1]}`, wantErr: errAny},
		{name: "out of range number", in: `{"user_id":1e400}`, wantErr: errAny},
		{name: "user_id too long", in: `{"user_id":"` + long("x", MaxUserIDLength+1) + `"}`, wantErr: errAny},
		{name: "numeric user_id too long", in: `{"user_id":` + long("1", MaxUserIDLength+1) + `}`, wantErr: errAny},
		{name: "not JSON", in: `user_id=1`, wantErr: errAny},
		{name: "empty", in: ``, wantErr: errAny},
		{name: "null", in: `null`, wantErr: errAny},
		{name: "string", in: `"10"`, wantErr: errAny},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseChannelData(tc.in)
			checkErr(t, err, tc.wantErr)
			if got.UserID != tc.want.UserID || string(got.Info) != string(tc.want.Info) || (got.Info == nil) != (tc.want.Info == nil) {
				t.Fatalf("got {%q %s}, want {%q %s}", got.UserID, got.Info, tc.want.UserID, tc.want.Info)
			}
		})
	}
}

func TestDataString(t *testing.T) {
	tcs := []struct {
		name string
		data string
		want string
	}{
		{name: "missing", data: ``, want: ``},
		{name: "whitespace only", data: " \n", want: ``},
		{name: "string content", data: `"hello"`, want: `hello`},
		{name: "string holding JSON", data: `"{\"a\":1}"`, want: `{"a":1}`},
		{name: "string escapes decoded", data: `"\u00e9\n\"\\"`, want: "é\n\"\\"},
		{name: "empty string", data: `""`, want: ``},
		{name: "object raw text", data: `{"name":"x"}`, want: `{"name":"x"}`},
		{name: "object spacing kept", data: `{ "a" : [1, 2] }`, want: `{ "a" : [1, 2] }`},
		{name: "object trimmed", data: "\t{\"a\":1}\n", want: `{"a":1}`},
		{name: "array raw text", data: `[1,"2"]`, want: `[1,"2"]`},
		{name: "number raw text", data: `42`, want: `42`},
		{name: "bool raw text", data: `true`, want: `true`},
		{name: "null raw text", data: `null`, want: `null`},
		{name: "broken string kept raw", data: `"abc`, want: `"abc`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if got := DataString(json.RawMessage(tc.data)); got != tc.want {
				t.Fatalf("DataString(%q) = %q, want %q", tc.data, got, tc.want)
			}
		})
	}
}

// quote returns s as a JSON string literal.
func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}
