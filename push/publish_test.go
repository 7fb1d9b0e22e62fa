package push

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

var publishNow = time.Unix(1_800_000_000, 0).UTC()

func names(prefix string, n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%q", fmt.Sprintf("%s%d", prefix, i))
	}
	return "[" + strings.Join(s, ",") + "]"
}

func TestParsePublishValid(t *testing.T) {
	tcs := []struct {
		name, kind, body string
		check            func(t *testing.T, p Publish)
	}{
		{"beams interests", "interests", `{"interests":["donuts","a","donuts"],"apns":{"aps":{"alert":{"title":"Hi"}}},"webhookUrl":"https://x"}`,
			func(t *testing.T, p Publish) {
				if p.Kind != ToInterests || !slices.Equal(p.Names, []string{"donuts", "a"}) || p.APNs == nil || p.Notification != nil {
					t.Fatalf("%+v", p)
				}
			}},
		{"beams users", "users", `{"users":["u1","u2"],"fcm":{"notification":{"title":"Hi","body":"b"}},"web":{"notification":{"title":"Hi"},"time_to_live":60}}`,
			func(t *testing.T, p Publish) {
				if p.Kind != ToUsers || len(p.Names) != 2 || p.FCM == nil || p.Web == nil {
					t.Fatalf("%+v", p)
				}
			}},
		{"devices", "devices", `{"device_ids":["d1"],"notification":{"title":"T"}}`,
			func(t *testing.T, p Publish) {
				if p.Kind != ToDevices || p.Names[0] != "d1" || p.Notification.Title != "T" {
					t.Fatalf("%+v", p)
				}
			}},
		{"channels", "channels", `{"channels":["private-orders","presence-room"],"notification":{"body":"B"}}`,
			func(t *testing.T, p Publish) {
				if p.Kind != ToChannels || len(p.Names) != 2 {
					t.Fatalf("%+v", p)
				}
			}},
		{"unified with every option", "", `{"recipient":{"users":["42"]},"notification":{"title":"T","body":"B","icon":"i","image":"https://img","deep_link":"https://x/y","sound":"default","badge":3,"data":{"k":"v","n":1}},
			"ttl":3600,"priority":"high","collapse_key":"score","send_at":1800000600,"expire_at":1800007200,"idempotency_key":"k-1","dry_run":true}`,
			func(t *testing.T, p Publish) {
				want := Publish{Kind: ToUsers, Names: []string{"42"}, TTL: time.Hour, HasTTL: true, Priority: PriorityHigh,
					CollapseKey: "score", SendAt: time.Unix(1800000600, 0).UTC(), ExpireAt: time.Unix(1800007200, 0).UTC(),
					IdempotencyKey: "k-1", DryRun: true}
				n := p.Notification
				p.Notification = nil
				if fmt.Sprint(p) != fmt.Sprint(want) {
					t.Fatalf("got %+v\nwant %+v", p, want)
				}
				if n.Title != "T" || n.Body != "B" || n.Icon != "i" || n.DeepLink != "https://x/y" || n.Sound != "default" ||
					*n.Badge != 3 || string(n.Data["n"]) != "1" {
					t.Fatalf("notification %+v", n)
				}
			}},
		{"unified ttl 0 and send_at in the past", "", `{"recipient":{"interests":["x"]},"notification":{"data":{"only":"data"}},"ttl":0,"send_at":1}`,
			func(t *testing.T, p Publish) {
				if !p.HasTTL || p.TTL != 0 || p.SendAt.Unix() != 1 {
					t.Fatalf("%+v", p)
				}
			}},
		{"null fields are absent", "", `{"recipient":{"channels":["c"],"users":null,"filter":null},"notification":{"title":"x"},"apns":null,"ttl":null}`,
			func(t *testing.T, p Publish) {
				if p.Kind != ToChannels || p.APNs != nil || p.HasTTL {
					t.Fatalf("%+v", p)
				}
			}},
		{"latest expire_at", "users", `{"users":["a"],"notification":{"title":"x"},"send_at":1800000600,"expire_at":1802419800}`,
			func(t *testing.T, p Publish) {
				if p.ExpireAt.Unix() != 1802419800 {
					t.Fatal(p.ExpireAt)
				}
			}},
		{"maximum counts", "users", `{"users":` + names("u", MaxPublishUsers) + `,"notification":{"title":"x"}}`,
			func(t *testing.T, p Publish) {
				if len(p.Names) != MaxPublishUsers {
					t.Fatal(len(p.Names))
				}
			}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			p, e := ParsePublish([]byte(tc.body), tc.kind, publishNow)
			if e != nil {
				t.Fatal(e)
			}
			tc.check(t, p)
		})
	}
}

func TestParsePublishRefused(t *testing.T) {
	long := strings.Repeat("a", 165)
	big := strings.Repeat("x", 5000)
	tcs := []struct {
		name, kind, body string
		status           int
		code             string
	}{
		{"not json", "", `{`, 400, "invalid_json"},
		{"array", "", `[]`, 400, "invalid_json"},
		{"wrong type", "users", `{"users":"u1"}`, 400, "invalid_publish"},
		{"unknown kind", "topics", `{}`, 404, "not_found"},
		{"no recipient", "", `{"notification":{"title":"x"}}`, 400, "invalid_recipient"},
		{"empty recipient", "", `{"recipient":{},"notification":{"title":"x"}}`, 400, "invalid_recipient"},
		{"two kinds", "", `{"recipient":{"users":["a"],"interests":["b"]},"notification":{"title":"x"}}`, 400, "invalid_recipient"},
		{"filter", "", `{"recipient":{"filter":{"platforms":["apns"]}},"notification":{"title":"x"}}`, 400, "invalid_recipient"},
		{"top-level list on unified", "", `{"recipient":{"users":["a"]},"interests":["b"],"notification":{"title":"x"}}`, 400, "invalid_recipient"},
		{"recipient on per-kind", "users", `{"recipient":{"users":["a"]},"notification":{"title":"x"}}`, 400, "invalid_recipient"},
		{"other list on per-kind", "users", `{"users":["a"],"interests":["b"],"notification":{"title":"x"}}`, 400, "invalid_recipient"},
		{"missing list", "devices", `{"notification":{"title":"x"}}`, 400, "invalid_recipient"},
		{"empty list", "interests", `{"interests":[],"notification":{"title":"x"}}`, 400, "invalid_recipient"},
		{"too many interests", "interests", `{"interests":` + names("i", 101) + `,"notification":{"title":"x"}}`, 400, "invalid_recipient"},
		{"too many channels", "channels", `{"channels":` + names("c", 101) + `,"notification":{"title":"x"}}`, 400, "invalid_recipient"},
		{"too many users", "users", `{"users":` + names("u", 1001) + `,"notification":{"title":"x"}}`, 400, "invalid_recipient"},
		{"too many devices", "devices", `{"device_ids":` + names("d", 1001) + `,"notification":{"title":"x"}}`, 400, "invalid_recipient"},
		{"bad interest", "interests", `{"interests":["a b"],"notification":{"title":"x"}}`, 400, "invalid_interest"},
		{"private interest", "interests", `{"interests":["private-x"],"notification":{"title":"x"}}`, 400, "invalid_interest"},
		{"long channel", "channels", `{"channels":["` + long + `"],"notification":{"title":"x"}}`, 400, "invalid_channel"},
		{"long user", "users", `{"users":["` + long + `"],"notification":{"title":"x"}}`, 400, "invalid_user_id"},
		{"empty user", "", `{"recipient":{"users":[""]},"notification":{"title":"x"}}`, 400, "invalid_user_id"},
		{"control in device id", "devices", `{"device_ids":["d\n1"],"notification":{"title":"x"}}`, 400, "invalid_device_id"},
		{"no content", "users", `{"users":["a"]}`, 400, "invalid_publish"},
		{"empty notification", "users", `{"users":["a"],"notification":{}}`, 400, "invalid_notification"},
		{"notification not object", "users", `{"users":["a"],"notification":"hi"}`, 400, "invalid_notification"},
		{"notification field type", "users", `{"users":["a"],"notification":{"title":1}}`, 400, "invalid_notification"},
		{"data not object", "users", `{"users":["a"],"notification":{"title":"x","data":[1]}}`, 400, "invalid_notification"},
		{"reserved data key", "users", `{"users":["a"],"notification":{"title":"x","data":{"google.x":"1"}}}`, 400, "invalid_notification"},
		{"aps data key", "users", `{"users":["a"],"notification":{"title":"x","data":{"aps":"1"}}}`, 400, "invalid_notification"},
		{"negative badge", "users", `{"users":["a"],"notification":{"title":"x","badge":-1}}`, 400, "invalid_notification"},
		{"apns not object", "users", `{"users":["a"],"apns":[1]}`, 400, "invalid_apns"},
		{"apns aps not object", "users", `{"users":["a"],"apns":{"aps":1}}`, 400, "invalid_apns"},
		{"fcm not object", "users", `{"users":["a"],"fcm":"x"}`, 400, "invalid_fcm"},
		{"fcm target", "users", `{"users":["a"],"fcm":{"token":"t","data":{"a":"b"}}}`, 400, "invalid_fcm"},
		{"fcm data not strings", "users", `{"users":["a"],"fcm":{"data":{"a":1}}}`, 400, "invalid_fcm"},
		{"fcm android not object", "users", `{"users":["a"],"fcm":{"android":"x"}}`, 400, "invalid_fcm"},
		{"fcm reserved data key", "users", `{"users":["a"],"fcm":{"data":{"from":"x"}}}`, 400, "invalid_fcm"},
		{"web not object", "users", `{"users":["a"],"web":true}`, 400, "invalid_web"},
		{"web notification not object", "users", `{"users":["a"],"web":{"notification":[]}}`, 400, "invalid_web"},
		{"web ttl too long", "users", `{"users":["a"],"web":{"time_to_live":2419201}}`, 400, "invalid_web"},
		{"negative ttl", "users", `{"users":["a"],"notification":{"title":"x"},"ttl":-1}`, 400, "invalid_ttl"},
		{"ttl too long", "users", `{"users":["a"],"notification":{"title":"x"},"ttl":2419201}`, 400, "invalid_ttl"},
		{"fractional ttl", "users", `{"users":["a"],"notification":{"title":"x"},"ttl":1.5}`, 400, "invalid_publish"},
		{"priority", "users", `{"users":["a"],"notification":{"title":"x"},"priority":"urgent"}`, 400, "invalid_priority"},
		{"empty collapse key", "users", `{"users":["a"],"notification":{"title":"x"},"collapse_key":""}`, 400, "invalid_collapse_key"},
		{"long collapse key", "users", `{"users":["a"],"notification":{"title":"x"},"collapse_key":"` + strings.Repeat("k", 65) + `"}`, 400, "invalid_collapse_key"},
		{"send_at too far", "users", `{"users":["a"],"notification":{"title":"x"},"send_at":1802592001}`, 400, "invalid_send_at"},
		{"send_at zero", "users", `{"users":["a"],"notification":{"title":"x"},"send_at":0}`, 400, "invalid_send_at"},
		{"expire_at before send_at", "users", `{"users":["a"],"notification":{"title":"x"},"send_at":1800000600,"expire_at":1800000600}`, 400, "invalid_expire_at"},
		{"expire_at too far", "users", `{"users":["a"],"notification":{"title":"x"},"send_at":1800000600,"expire_at":1802419801}`, 400, "invalid_expire_at"},
		{"expire_at past", "users", `{"users":["a"],"notification":{"title":"x"},"expire_at":1799999999}`, 400, "invalid_expire_at"},
		{"idempotency key", "users", `{"users":["a"],"notification":{"title":"x"},"idempotency_key":""}`, 400, "invalid_idempotency_key"},
		{"apns too large", "users", `{"users":["a"],"apns":{"aps":{"alert":"` + big + `"}}}`, 413, "payload_too_large"},
		{"notification too large", "users", `{"users":["a"],"notification":{"title":"` + big + `"}}`, 413, "payload_too_large"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			_, e := ParsePublish([]byte(tc.body), tc.kind, publishNow)
			if e == nil {
				t.Fatal("accepted")
			}
			if e.status != tc.status || e.code != tc.code {
				t.Fatalf("got %d %s (%s), want %d %s", e.status, e.code, e.descr, tc.status, tc.code)
			}
			if e.descr == "" {
				t.Fatal("no description")
			}
		})
	}
}

func TestParsePublishTooLargeNamesProvider(t *testing.T) {
	big := strings.Repeat("x", 3000)
	_, e := ParsePublish([]byte(`{"users":["a"],"web":{"notification":{"title":"`+big+`"}}}`), "users", publishNow)
	if e == nil || e.status != 413 || !strings.Contains(e.descr, "web") {
		t.Fatalf("%v", e)
	}
	_, e = ParsePublish([]byte(`{"users":["a"],"fcm":{"data":{"k":"`+big+big+`"}}}`), "users", publishNow)
	if e == nil || e.status != 413 || !strings.Contains(e.descr, "fcm") {
		t.Fatalf("%v", e)
	}
}

func FuzzParsePublish(f *testing.F) {
	for _, s := range []string{
		`{"recipient":{"users":["42"]},"notification":{"title":"T","body":"B","badge":1,"data":{"k":[1]}},"ttl":60,"priority":"normal","collapse_key":"c"}`,
		`{"interests":["a"],"apns":{"aps":{"content-available":1}},"fcm":{"notification":{"title":"x","icon":"i"}},"web":{"time_to_live":0}}`,
		`{"device_ids":["d"],"notification":{"data":{"a":"b"}},"send_at":1800000100,"expire_at":1800000200}`,
		`{"channels":["private-a"],"web":{"notification":{}},"dry_run":true}`,
		`null`, `{}`, `[`,
	} {
		for _, k := range []string{"", "interests", "users", "devices", "channels"} {
			f.Add([]byte(s), k)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, kind string) {
		p, e := ParsePublish(body, kind, publishNow)
		if e != nil {
			if e.status != 400 && e.status != 413 && e.status != 404 {
				t.Fatalf("status %d: %v", e.status, e)
			}
			w := httptest.NewRecorder()
			replyError(w, e)
			var v struct{ Error, Description string }
			if json.Unmarshal(w.Body.Bytes(), &v) != nil || v.Error == "" || v.Description == "" {
				t.Fatalf("error JSON %q", w.Body.String())
			}
			return
		}
		if len(p.Names) == 0 {
			t.Fatal("accepted without recipients")
		}
		// What is accepted renders for every provider within its limit.
		d, e := p.RenderDryRun(len(p.Names), publishNow)
		if e != nil {
			t.Fatalf("accepted but not rendered: %v", e)
		}
		if _, err := json.Marshal(d); err != nil {
			t.Fatal(err)
		}
		for what, r := range map[string]*DryRunRendering{"apns": d.Rendered.APNs, "fcm": d.Rendered.FCM, "web": d.Rendered.Web} {
			if r == nil {
				continue
			}
			body := r.Payload
			if what == "fcm" {
				body = r.Message
			}
			m, ok := object(body)
			if !ok {
				t.Fatalf("%s rendering is not an object: %s", what, body)
			}
			if _, has := m["token"]; has && what == "fcm" {
				t.Fatal("fcm body names a target")
			}
		}
		if d.Rendered.FCM != nil {
			var v struct {
				Data map[string]string `json:"data"`
			}
			if err := json.Unmarshal(d.Rendered.FCM.Message, &v); err != nil {
				t.Fatalf("fcm data values must be strings: %v", err)
			}
		}
	})
}
