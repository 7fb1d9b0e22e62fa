package protocol

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// Seeds beyond f.Add live in testdata/fuzz/<FuzzName>/; crashers found by
// go test -fuzz are committed there too.

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"event":"pusher:subscribe","data":{"auth":"","channel":"chatrooms.5432132"}}`,
		`{"event":"pusher:subscribe","data":"{\"channel\":\"private-x\",\"auth\":\"k:s\"}"}`,
		`{"event":"pusher:subscribe","data":{"auth":"k:s","channel_data":"{\"user_id\":10}","channel":"presence-x"}}`,
		`{"event":"pusher:subscribe","data":{"channel":"presence-x","channel_data":null}}`,
		`{"event":"pusher:signin","data":{"auth":"k:s","user_data":"{\"id\":\"1\",\"watchlist\":[\"2\",3]}"}}`,
		`{"event":"pusher:unsubscribe","data":{"channel":"x"}}`,
		`{"event":"client-typing","channel":"private-chat","data":{"name":"x"}}`,
		`{"event":"pusher:ping","data":{}}`,
		`{"event":"x","data":"\"{}\""}`,
		`{"event":1}`, `[]`, `null`, `"x"`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := Decode(b)
		if err != nil {
			return
		}
		if in.Event == "" {
			t.Fatalf("Decode(%q) succeeded with an empty event", b)
		}
		_ = DataString(in.Data)
		if s, err := ParseSubscribe(in.Data); err == nil {
			if s.Channel == "" {
				t.Fatalf("ParseSubscribe(%s) succeeded with an empty channel", in.Data)
			}
			_ = Classify(s.Channel)
			_ = ValidChannelName(s.Channel, 200)
			if s.ChannelData != "" {
				checkMember(t, s.ChannelData)
			}
		}
		if s, err := ParseSignin(in.Data); err == nil {
			if s.Auth == "" || s.UserData == "" {
				t.Fatalf("ParseSignin(%s) = %+v: empty auth or user_data", in.Data, s)
			}
			if u, err := ParseUserData(s.UserData); err == nil {
				if u.ID == "" || len(u.ID) > MaxUserIDLength {
					t.Fatalf("ParseUserData(%q) gave id %q", s.UserData, u.ID)
				}
				for _, w := range u.Watchlist {
					if w == "" {
						t.Fatalf("ParseUserData(%q) gave an empty watchlist id", s.UserData)
					}
				}
			}
		}
	})
}

func FuzzChannelName(f *testing.F) {
	for _, s := range []string{
		"my-channel", "private-chat", "private-encrypted-cache-x", "presence-cache-room",
		"#server-to-user-42", "#server-to-user-", "#foo", "foo-private-x", "a b", "caf\u00e9", "\xff", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		c := Classify(name)
		if c.Type > ServerToUser {
			t.Fatalf("Classify(%q) = unknown type %d", name, c.Type)
		}
		if !ValidChannelName(name, 200) {
			return
		}
		if len(name) == 0 || len(name) > 200 {
			t.Fatalf("ValidChannelName accepted %q of length %d", name, len(name))
		}
		rest := strings.TrimPrefix(name, ServerToUserPrefix)
		if rest == "" {
			t.Fatalf("ValidChannelName accepted %q with no user id", name)
		}
		for i := 0; i < len(rest); i++ {
			if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-=@,.;", rune(rest[i])) {
				t.Fatalf("ValidChannelName accepted %q with byte %q", name, rest[i])
			}
		}
		if (c.Type == ServerToUser) != strings.HasPrefix(name, ServerToUserPrefix) {
			t.Fatalf("Classify(%q) = %+v", name, c)
		}
	})
}

// fuzzNow is the worked example's time; fuzzed timestamps near it reach the
// signature check.
var fuzzNow = restNow

func FuzzVerifyRequest(f *testing.F) {
	f.Add("auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature="+restSignature, []byte(restBody), restSignature)
	f.Add("auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&info=user_count%2Csubscription_count&filter_by_prefix=presence-&auth_signature=00", []byte{}, "ff")
	f.Add("AUTH_KEY=278d425bdf160c739803&Auth_Timestamp=1353088179&auth_key=x&a=1&A=2&auth_signature=zz", []byte("{}"), "")
	f.Add("%zz&;=&==&auth_timestamp=1e3", []byte(nil), "0")
	f.Fuzz(func(t *testing.T, rawQuery string, body []byte, sig string) {
		// ParseQuery returns what it could parse along with an error.
		q, _ := url.ParseQuery(rawQuery)
		secrets := []string{testSecret}

		// 1. Whatever was sent: success only with the real HMAC.
		if err := VerifyRequest("POST", restPath, q, body, testKey, secrets, fuzzNow); err == nil {
			given, _ := hex.DecodeString(authParam(q, "auth_signature"))
			if hex.EncodeToString(given) != Sign(testSecret, RequestString("POST", restPath, q)) {
				t.Fatalf("VerifyRequest accepted %q with a signature that is not the HMAC", rawQuery)
			}
		}

		// 2. Signed properly, the same parameters verify.
		q.Set("auth_key", testKey)
		q.Set("auth_timestamp", "1353088179")
		if len(body) > 0 {
			sum := md5.Sum(body)
			q.Set("body_md5", hex.EncodeToString(sum[:]))
		}
		good := Sign(testSecret, RequestString("POST", restPath, q))
		q.Set("auth_signature", good)
		if err := VerifyRequest("POST", restPath, q, body, testKey, secrets, fuzzNow); err != nil {
			t.Fatalf("correctly signed %q refused: %v", q.Encode(), err)
		}

		// 3. Any other signature is refused.
		if strings.EqualFold(sig, good) {
			return
		}
		q.Set("auth_signature", sig)
		if err := VerifyRequest("POST", restPath, q, body, testKey, secrets, fuzzNow); err == nil {
			t.Fatalf("signature %q accepted for %q, want %s", sig, q.Encode(), good)
		}
	})
}

// authParam mirrors VerifyRequest's lookup for the test's oracle.
func authParam(q url.Values, name string) string {
	if v := q[name]; len(v) > 0 {
		return v[0]
	}
	best, val := "", ""
	for k, v := range q {
		if len(v) > 0 && strings.EqualFold(k, name) && (best == "" || k < best) {
			best, val = k, v[0]
		}
	}
	return val
}

func FuzzChannelData(f *testing.F) {
	for _, s := range []string{
		dataMrPusher, dataMrChannels, `{"user_id":"1"}`, `{"user_id":-0.5e3}`, `{"user_id":""}`,
		`{"user_id":null}`, `{"user_id":1e400}`, `{"user_id":"` + long("x", 129) + `"}`, `null`, `[]`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkMember(t, s)
	})
}

// checkMember parses channel_data and checks a success is usable.
func checkMember(t *testing.T, s string) {
	t.Helper()
	m, err := ParseChannelData(s)
	if err != nil {
		return
	}
	if m.UserID == "" || len(m.UserID) > MaxUserIDLength {
		t.Fatalf("ParseChannelData(%q) gave user id %q", s, m.UserID)
	}
	if m.Info != nil && (!json.Valid(m.Info) || string(m.Info) == "null") {
		t.Fatalf("ParseChannelData(%q) gave info %s", s, m.Info)
	}
	// The id is reused inside JSON payloads and as a map key.
	if out := AppendString(nil, m.UserID); !json.Valid(out) {
		t.Fatalf("user id %q does not encode", m.UserID)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{
		"", "hello", "\"\\/", "\x00\x01\x1f\x7f", "\n\r\t\b\f", "caf\u00e9", "\u2028\u2029",
		"\xff", "a\xc3", "\xed\xa0\x80", "\ufffd", "😀", "</script>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString([]byte("{}"), s)
		if string(out[:2]) != "{}" {
			t.Fatalf("AppendString overwrote dst")
		}
		checkStringRoundTrip(t, s, out[2:])
		if utf8.ValidString(s) {
			var got string
			_ = json.Unmarshal(out[2:], &got)
			if got != s {
				t.Fatalf("valid UTF-8 %q decoded to %q", s, got)
			}
		}
	})
}
