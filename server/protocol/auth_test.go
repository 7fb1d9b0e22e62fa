package protocol

import (
	"crypto/md5"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Spec §3 test vectors.
const (
	testKey    = "278d425bdf160c739803"
	testSecret = "7ad3773142a6692b25b8"
	testSocket = "1234.1234"

	sigPrivate    = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
	sigUser       = "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"
	sigMrPusher   = "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"
	sigMrChannels = "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"

	dataMrPusher   = `{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`
	dataMrChannels = `{"user_id":10,"user_info":{"name":"Mr. Channels"}}`
	userData       = `{"id":"12345"}`
)

func TestSignVectors(t *testing.T) {
	tcs := []struct {
		name   string
		toSign string
		want   string
	}{
		{name: "private", toSign: ChannelString(testSocket, "private-foobar", ""), want: sigPrivate},
		{name: "user signin", toSign: UserString(testSocket, userData), want: sigUser},
		{name: "presence Mr. Pusher", toSign: ChannelString(testSocket, "presence-foobar", dataMrPusher), want: sigMrPusher},
		{name: "presence Mr. Channels", toSign: ChannelString(testSocket, "presence-foobar", dataMrChannels), want: sigMrChannels},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if got := Sign(testSecret, tc.toSign); got != tc.want {
				t.Fatalf("Sign(%q) = %s, want %s", tc.toSign, got, tc.want)
			}
		})
	}
}

func TestStringsToSign(t *testing.T) {
	tcs := []struct {
		name string
		got  string
		want string
	}{
		{name: "private", got: ChannelString(testSocket, "private-foobar", ""), want: "1234.1234:private-foobar"},
		{name: "encrypted", got: ChannelString(testSocket, "private-encrypted-test", ""), want: "1234.1234:private-encrypted-test"},
		{name: "presence", got: ChannelString(testSocket, "presence-foobar", dataMrPusher), want: "1234.1234:presence-foobar:" + dataMrPusher},
		{name: "user", got: UserString(testSocket, userData), want: `1234.1234::user::{"id":"12345"}`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestVerifyAuth(t *testing.T) {
	private := ChannelString(testSocket, "private-foobar", "")
	tcs := []struct {
		name    string
		token   string
		secrets []string
		toSign  string
		wantErr error
	}{
		{name: "private", token: testKey + ":" + sigPrivate, toSign: private},
		{name: "presence Mr. Pusher", token: testKey + ":" + sigMrPusher, toSign: ChannelString(testSocket, "presence-foobar", dataMrPusher)},
		{name: "presence Mr. Channels", token: testKey + ":" + sigMrChannels, toSign: ChannelString(testSocket, "presence-foobar", dataMrChannels)},
		{name: "user signin", token: testKey + ":" + sigUser, toSign: UserString(testSocket, userData)},
		{name: "uppercase hex accepted", token: testKey + ":" + strings.ToUpper(sigPrivate), toSign: private},
		{name: "second secret accepted (rotation)", token: testKey + ":" + sigPrivate, secrets: []string{"new-secret", testSecret}, toSign: private},
		{name: "old secret only", token: testKey + ":" + sigPrivate, secrets: []string{"new-secret"}, toSign: private, wantErr: ErrAuthSig},
		{name: "no secrets", token: testKey + ":" + sigPrivate, secrets: []string{}, toSign: private, wantErr: ErrAuthSig},
		{name: "doc's mismatched presence pair", token: testKey + ":" + sigMrPusher, toSign: ChannelString(testSocket, "presence-foobar", dataMrChannels), wantErr: ErrAuthSig},
		{name: "wrong key prefix", token: "wrongkey:" + sigPrivate, toSign: private, wantErr: ErrAuthKey},
		{name: "empty key prefix", token: ":" + sigPrivate, toSign: private, wantErr: ErrAuthKey},
		{name: "key prefix case differs", token: strings.ToUpper(testKey) + ":" + sigPrivate, toSign: private, wantErr: ErrAuthKey},
		{name: "bad hex", token: testKey + ":zz" + sigPrivate[2:], toSign: private, wantErr: ErrAuthSig},
		{name: "odd hex length", token: testKey + ":" + sigPrivate[1:], toSign: private, wantErr: ErrAuthSig},
		{name: "truncated signature", token: testKey + ":" + sigPrivate[:32], toSign: private, wantErr: ErrAuthSig},
		{name: "wrong signature", token: testKey + ":" + sigUser, toSign: private, wantErr: ErrAuthSig},
		{name: "other channel", token: testKey + ":" + sigPrivate, toSign: ChannelString(testSocket, "private-other", ""), wantErr: ErrAuthSig},
		{name: "other socket (replay)", token: testKey + ":" + sigPrivate, toSign: ChannelString("1234.1235", "private-foobar", ""), wantErr: ErrAuthSig},
		{name: "extra colon", token: testKey + ":" + sigPrivate + ":x", toSign: private, wantErr: ErrAuthSig},
		{name: "missing colon", token: testKey + sigPrivate, toSign: private, wantErr: ErrAuthFormat},
		{name: "signature only", token: sigPrivate, toSign: private, wantErr: ErrAuthFormat},
		{name: "empty signature", token: testKey + ":", toSign: private, wantErr: ErrAuthFormat},
		{name: "empty token", token: "", toSign: private, wantErr: ErrAuthFormat},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			secrets := tc.secrets
			if secrets == nil {
				secrets = []string{testSecret}
			}
			checkErr(t, VerifyAuth(tc.token, testKey, secrets, tc.toSign), tc.wantErr)
		})
	}
}

// Spec §4.2 worked example.
const (
	restPath      = "/apps/3/events"
	restTimestamp = 1353088179
	restBody      = `{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`
	restBodyMD5   = "ec365a775a4cd0599faeb73354201b6f"
	restToSign    = "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f"
	restSignature = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
)

var restNow = time.Unix(restTimestamp, 0)

// restQuery returns the worked example's query, auth_signature included.
func restQuery() url.Values {
	return url.Values{
		"auth_key":       {testKey},
		"auth_timestamp": {"1353088179"},
		"auth_version":   {"1.0"},
		"body_md5":       {restBodyMD5},
		"auth_signature": {restSignature},
	}
}

func TestRequestStringWorkedExample(t *testing.T) {
	sum := md5.Sum([]byte(restBody))
	if got := hex.EncodeToString(sum[:]); got != restBodyMD5 {
		t.Fatalf("body md5 = %s, want %s", got, restBodyMD5)
	}
	if got := RequestString("POST", restPath, restQuery()); got != restToSign {
		t.Fatalf("RequestString =\n%q\nwant\n%q", got, restToSign)
	}
	if got := Sign(testSecret, restToSign); got != restSignature {
		t.Fatalf("signature = %s, want %s", got, restSignature)
	}
}

func TestRequestString(t *testing.T) {
	tcs := []struct {
		name   string
		method string
		path   string
		query  string
		want   string
	}{
		{
			name: "worked example, lowercase method", method: "post", path: restPath,
			query: "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=x",
			want:  restToSign,
		},
		{
			name: "keys lowercased and sorted", method: "GET", path: "/apps/3/channels",
			query: "Z=1&AUTH_KEY=k&b=2&Auth_Signature=x&a=3",
			want:  "GET\n/apps/3/channels\na=3&auth_key=k&b=2&z=1",
		},
		{
			name: "values decoded, not escaped", method: "GET", path: "/apps/3/channels",
			query: "info=user_count%2Csubscription_count&filter_by_prefix=presence-&x=a+b%26c%3Dd",
			want:  "GET\n/apps/3/channels\nfilter_by_prefix=presence-&info=user_count,subscription_count&x=a b&c=d",
		},
		{
			name: "repeated values joined with commas", method: "POST", path: "/apps/3/events",
			query: "channels[]=a&channels[]=b",
			want:  "POST\n/apps/3/events\nchannels[]=a,b",
		},
		{
			name: "keys equal but for case sorted by value", method: "GET", path: "/p",
			query: "a=2&A=1&a=3",
			want:  "GET\n/p\na=1&a=2,3",
		},
		{
			name: "empty query", method: "GET", path: "/p",
			want: "GET\n/p\n",
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			// Map order is random: the string must be the same every time.
			for range 50 {
				if got := RequestString(tc.method, tc.path, q); got != tc.want {
					t.Fatalf("RequestString =\n%q\nwant\n%q", got, tc.want)
				}
			}
		})
	}
}

func TestVerifyRequest(t *testing.T) {
	// A GET whose values need decoding, signed over the spec's decoded form.
	const (
		channelsPath   = "/apps/3/channels"
		channelsToSign = "GET\n/apps/3/channels\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&filter_by_prefix=presence-&info=user_count,subscription_count"
	)
	channelsSig := Sign(testSecret, channelsToSign)
	channelsQuery := "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&auth_signature=" + channelsSig

	with := func(f func(q url.Values)) url.Values {
		q := restQuery()
		f(q)
		return q
	}
	parse := func(raw string) url.Values {
		q, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	tcs := []struct {
		name    string
		method  string
		path    string
		query   url.Values
		body    string
		secrets []string
		now     time.Time
		wantErr error
	}{
		{name: "worked example", query: restQuery()},
		{name: "lowercase method", method: "post", query: restQuery()},
		{name: "600s after", query: restQuery(), now: restNow.Add(600 * time.Second)},
		{name: "600s before", query: restQuery(), now: restNow.Add(-600 * time.Second)},
		{name: "second secret accepted (rotation)", query: restQuery(), secrets: []string{"new-secret", testSecret}},
		{
			name: "uppercase query keys",
			query: url.Values{
				"AUTH_KEY":       {testKey},
				"AUTH_TIMESTAMP": {"1353088179"},
				"Auth_Version":   {"1.0"},
				"BODY_MD5":       {restBodyMD5},
				"AUTH_SIGNATURE": {restSignature},
			},
		},
		{name: "uppercase body_md5 value", query: with(func(q url.Values) { q.Set("body_md5", strings.ToUpper(restBodyMD5)) }),
			wantErr: ErrBadSignature}, // the signature covers the value as sent
		{name: "uppercase signature hex", query: with(func(q url.Values) { q.Set("auth_signature", strings.ToUpper(restSignature)) })},
		{
			name: "escaped values (php)", method: "GET", path: channelsPath, body: "-",
			query: parse(channelsQuery + "&info=user_count%2Csubscription_count&filter_by_prefix=presence-"),
		},
		{
			name: "unescaped values (node, go)", method: "GET", path: channelsPath, body: "-",
			query: parse(channelsQuery + "&info=user_count,subscription_count&filter_by_prefix=presence-"),
		},
		{
			name: "values signed escaped are refused", method: "GET", path: channelsPath, body: "-",
			query: parse("auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&info=user_count%2Csubscription_count&filter_by_prefix=presence-&auth_signature=" +
				Sign(testSecret, strings.Replace(channelsToSign, "user_count,subscription_count", "user_count%2Csubscription_count", 1))),
			wantErr: ErrBadSignature,
		},
		{name: "601s after", query: restQuery(), now: restNow.Add(601 * time.Second), wantErr: ErrStaleTimestamp},
		{name: "601s before", query: restQuery(), now: restNow.Add(-601 * time.Second), wantErr: ErrStaleTimestamp},
		{name: "far future timestamp", query: with(func(q url.Values) { q.Set("auth_timestamp", "9223372036854775807") }), wantErr: ErrStaleTimestamp},
		{name: "far past timestamp", query: with(func(q url.Values) { q.Set("auth_timestamp", "-9223372036854775808") }), wantErr: ErrStaleTimestamp},
		{name: "wrong key", query: with(func(q url.Values) { q.Set("auth_key", "otherkey") }), wantErr: ErrWrongKey},
		{name: "body changed", query: restQuery(), body: strings.Replace(restBody, "foo", "bar", 1), wantErr: ErrBodyMD5},
		{name: "body without body_md5", query: with(func(q url.Values) { q.Del("body_md5") }), wantErr: ErrMissingBodyMD5},
		{name: "empty body_md5 with body", query: with(func(q url.Values) { q.Set("body_md5", "") }), wantErr: ErrMissingBodyMD5},
		{name: "tampered signature", query: with(func(q url.Values) { q.Set("auth_signature", "ea"+restSignature[2:]) }), wantErr: ErrBadSignature},
		{name: "non-hex signature", query: with(func(q url.Values) { q.Set("auth_signature", "zz"+restSignature[2:]) }), wantErr: ErrBadSignature},
		{name: "truncated signature", query: with(func(q url.Values) { q.Set("auth_signature", restSignature[:40]) }), wantErr: ErrBadSignature},
		{name: "unsigned extra parameter", query: with(func(q url.Values) { q.Set("socket_id", "1.1") }), wantErr: ErrBadSignature},
		{name: "other method", method: "PUT", query: restQuery(), wantErr: ErrBadSignature},
		{name: "other path", path: "/apps/4/events", query: restQuery(), wantErr: ErrBadSignature},
		{name: "other secret", query: restQuery(), secrets: []string{"new-secret"}, wantErr: ErrBadSignature},
		{name: "no secrets", query: restQuery(), secrets: []string{}, wantErr: ErrBadSignature},
		{name: "bad timestamp", query: with(func(q url.Values) { q.Set("auth_timestamp", "1353088179.0") }), wantErr: ErrBadTimestamp},
		{name: "missing auth_key", query: with(func(q url.Values) { q.Del("auth_key") }), wantErr: ErrMissingAuthParams},
		{name: "missing auth_timestamp", query: with(func(q url.Values) { q.Del("auth_timestamp") }), wantErr: ErrMissingAuthParams},
		{name: "missing auth_signature", query: with(func(q url.Values) { q.Del("auth_signature") }), wantErr: ErrMissingAuthParams},
		{name: "empty auth_signature", query: with(func(q url.Values) { q.Set("auth_signature", "") }), wantErr: ErrMissingAuthParams},
		{name: "empty query", query: url.Values{}, wantErr: ErrMissingAuthParams},
		{
			// A second, differently cased auth_key is signed like any other
			// parameter; the exact lowercase one is the one checked.
			name: "differently cased duplicate auth_key",
			query: with(func(q url.Values) {
				q.Set("AUTH_KEY", "otherkey")
			}),
			wantErr: ErrBadSignature,
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			method, path, body, secrets, now := tc.method, tc.path, tc.body, tc.secrets, tc.now
			if method == "" {
				method = "POST"
			}
			if path == "" {
				path = restPath
			}
			switch body {
			case "":
				body = restBody
			case "-":
				body = ""
			}
			if secrets == nil {
				secrets = []string{testSecret}
			}
			if now.IsZero() {
				now = restNow
			}
			for range 20 { // map order is random; the answer must not be
				checkErr(t, VerifyRequest(method, path, tc.query, []byte(body), testKey, secrets, now), tc.wantErr)
			}
		})
	}
}

func BenchmarkVerifyRequest(b *testing.B) {
	q := restQuery()
	body := []byte(restBody)
	secrets := []string{testSecret}
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyRequest("POST", restPath, q, body, testKey, secrets, restNow); err != nil {
			b.Fatal(err)
		}
	}
}
