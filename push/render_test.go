package push

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, body string) Publish {
	t.Helper()
	p, e := ParsePublish([]byte(body), "", publishNow)
	if e != nil {
		t.Fatal(e)
	}
	return p
}

// sameJSON compares JSON texts as values.
func sameJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v in %s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad want: %v", what, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("%s:\ngot  %s\nwant %s", what, gb, wb)
	}
}

const fullNotification = `"notification":{"title":"T","body":"B","icon":"https://i/icon.png","image":"https://i/img.png","deep_link":"https://app/x","sound":"ding","badge":2,"data":{"k":"v","n":1,"o":{"a":true}}}`

func TestRenderGeneric(t *testing.T) {
	p := mustParse(t, `{"recipient":{"users":["42"]},`+fullNotification+`,"ttl":3600,"priority":"high","collapse_key":"score:1"}`)

	a, e := p.RenderAPNs(publishNow)
	if e != nil {
		t.Fatal(e)
	}
	sameJSON(t, "apns", a.Payload, `{"aps":{"alert":{"title":"T","body":"B"},"sound":"ding","badge":2,"mutable-content":1},
		"deep_link":"https://app/x","image":"https://i/img.png","k":"v","n":1,"o":{"a":true}}`)
	if a.PushType != "alert" || a.Priority != 10 || !a.Expiration.Equal(publishNow.Add(time.Hour)) || a.CollapseID != "score:1" {
		t.Fatalf("apns headers %+v", a)
	}

	f, e := p.RenderFCM(publishNow)
	if e != nil {
		t.Fatal(e)
	}
	sameJSON(t, "fcm", f, `{"notification":{"title":"T","body":"B","image":"https://i/img.png"},
		"data":{"k":"v","n":"1","o":"{\"a\":true}","deep_link":"https://app/x"},
		"android":{"priority":"HIGH","ttl":"3600s","collapse_key":"score:1","notification":{"icon":"https://i/icon.png","sound":"ding","notification_count":2}},
		"apns":{"headers":{"apns-priority":"10","apns-collapse-id":"score:1"},"payload":{"aps":{"sound":"ding","badge":2}}}}`)

	w, e := p.RenderWeb(publishNow)
	if e != nil {
		t.Fatal(e)
	}
	sameJSON(t, "web", w.Payload, `{"notification":{"title":"T","body":"B","icon":"https://i/icon.png","image":"https://i/img.png","deep_link":"https://app/x"},
		"data":{"k":"v","n":1,"o":{"a":true}}}`)
	if w.TTL != time.Hour || w.Urgency != "high" || w.Topic != webTopic("score:1") || len(w.Topic) != 32 {
		t.Fatalf("web options %+v", w)
	}
}

func TestRenderDefaultsAndBackground(t *testing.T) {
	p := mustParse(t, `{"recipient":{"devices":["d1"]},"notification":{"data":{"sync":"1"}},"priority":"high"}`)
	a, _ := p.RenderAPNs(publishNow)
	sameJSON(t, "apns", a.Payload, `{"aps":{"content-available":1},"sync":"1"}`)
	if a.PushType != "background" || a.Priority != 5 || !a.Expiration.Equal(publishNow.Add(MaxPublishTTL)) || a.CollapseID != "" {
		t.Fatalf("%+v", a)
	}
	f, _ := p.RenderFCM(publishNow)
	sameJSON(t, "fcm", f, `{"data":{"sync":"1"},"android":{"priority":"HIGH"},"apns":{"headers":{"apns-priority":"10"}}}`)
	w, _ := p.RenderWeb(publishNow)
	sameJSON(t, "web", w.Payload, `{"data":{"sync":"1"}}`)
	if w.TTL != 0 || w.Topic != "" || w.Urgency != "high" {
		t.Fatalf("%+v", w)
	}

	// ttl 0: try once everywhere; normal priority.
	p = mustParse(t, `{"recipient":{"devices":["d1"]},"notification":{"title":"x"},"ttl":0,"priority":"normal","collapse_key":"abc_DEF-1"}`)
	a, _ = p.RenderAPNs(publishNow)
	if !a.Expiration.IsZero() || a.Priority != 5 || a.PushType != "alert" {
		t.Fatalf("%+v", a)
	}
	f, _ = p.RenderFCM(publishNow)
	sameJSON(t, "fcm", f, `{"notification":{"title":"x"},"android":{"priority":"NORMAL","ttl":"0s","collapse_key":"abc_DEF-1"},
		"apns":{"headers":{"apns-priority":"5","apns-collapse-id":"abc_DEF-1"}}}`)
	w, _ = p.RenderWeb(publishNow)
	if w.TTL >= 0 || w.Urgency != "normal" || w.Topic != "abc_DEF-1" {
		t.Fatalf("%+v", w)
	}
}

func TestRenderExpireAtBoundsLifetime(t *testing.T) {
	p := mustParse(t, `{"recipient":{"devices":["d1"]},"notification":{"title":"x"},"expire_at":1800000600}`)
	at := publishNow.Add(100 * time.Second)
	a, _ := p.RenderAPNs(at)
	if !a.Expiration.Equal(p.ExpireAt) {
		t.Fatalf("%v", a.Expiration)
	}
	f, _ := p.RenderFCM(at)
	sameJSON(t, "fcm", f, `{"notification":{"title":"x"},"android":{"ttl":"500s"}}`)
	w, _ := p.RenderWeb(at)
	if w.TTL != 500*time.Second {
		t.Fatal(w.TTL)
	}
	if _, e := p.RenderAPNs(p.ExpireAt); e == nil || e.code != "expired" {
		t.Fatalf("%v", e)
	}
}

func TestRenderOverrides(t *testing.T) {
	p := mustParse(t, `{"recipient":{"interests":["i"]},`+fullNotification+`,"ttl":60,"priority":"normal","collapse_key":"c",
		"apns":{"aps":{"alert":"own"},"x":1},
		"fcm":{"notification":{"title":"F","icon":"ic","android_channel_id":"ch"},"data":{"a":"b"},"android":{"priority":"HIGH"}},
		"web":{"notification":{"title":"W"},"time_to_live":30}}`)
	a, _ := p.RenderAPNs(publishNow)
	if string(a.Payload) != `{"aps":{"alert":"own"},"x":1}` || a.Priority != 5 || a.CollapseID != "c" ||
		!a.Expiration.Equal(publishNow.Add(time.Minute)) {
		t.Fatalf("%s %+v", a.Payload, a)
	}
	f, _ := p.RenderFCM(publishNow)
	sameJSON(t, "fcm", f, `{"notification":{"title":"F"},"data":{"a":"b"},
		"android":{"priority":"HIGH","ttl":"60s","collapse_key":"c","notification":{"icon":"ic","channel_id":"ch"}},
		"apns":{"headers":{"apns-priority":"5","apns-collapse-id":"c"}}}`)
	w, _ := p.RenderWeb(publishNow)
	sameJSON(t, "web", w.Payload, `{"notification":{"title":"W"}}`)
	if w.TTL != 30*time.Second || w.Urgency != "normal" || w.Topic != "c" {
		t.Fatalf("%+v", w)
	}
}

func TestRenderWebNullTimeToLive(t *testing.T) {
	p := mustParse(t, `{"recipient":{"users":["u"]},"web":{"data":{"a":1},"time_to_live":null}}`)
	w, _ := p.RenderWeb(publishNow)
	if string(w.Payload) != `{"data":{"a":1}}` || w.TTL != 0 {
		t.Fatalf("%s %v", w.Payload, w.TTL)
	}
}

func TestRenderSkipsProvidersWithoutContent(t *testing.T) {
	p := mustParse(t, `{"recipient":{"users":["u"]},"apns":{"aps":{"alert":"x"}}}`)
	if f, e := p.RenderFCM(publishNow); f != nil || e != nil {
		t.Fatalf("%s %v", f, e)
	}
	if w, e := p.RenderWeb(publishNow); w.Payload != nil || e != nil {
		t.Fatalf("%+v %v", w, e)
	}
	d, e := p.RenderDryRun(3, publishNow)
	if e != nil {
		t.Fatal(e)
	}
	b, _ := json.Marshal(d)
	sameJSON(t, "dry run", b, `{"expected_recipients":3,"rendered":{"apns":{"headers":{"apns-push-type":"alert","apns-expiration":"1802419200"},
		"payload":{"aps":{"alert":"x"}}},"fcm":null,"web":null}}`)
}

func TestRenderDryRun(t *testing.T) {
	p := mustParse(t, `{"recipient":{"users":["u"]},"notification":{"title":"T"},"ttl":0,"priority":"high","collapse_key":"a b","dry_run":true}`)
	d, e := p.RenderDryRun(7, publishNow)
	if e != nil {
		t.Fatal(e)
	}
	b, _ := json.Marshal(d)
	topic := webTopic("a b")
	sameJSON(t, "dry run", b, `{"expected_recipients":7,"rendered":{
		"apns":{"headers":{"apns-push-type":"alert","apns-priority":"10","apns-expiration":"0","apns-collapse-id":"a b"},"payload":{"aps":{"alert":{"title":"T"}}}},
		"fcm":{"message":{"notification":{"title":"T"},"android":{"priority":"HIGH","ttl":"0s","collapse_key":"a b"},"apns":{"headers":{"apns-priority":"10","apns-collapse-id":"a b"}}}},
		"web":{"headers":{"TTL":"0","Urgency":"high","Topic":"`+topic+`"},"payload":{"notification":{"title":"T"}}}}}`)
}

func TestWebTopic(t *testing.T) {
	for _, k := range []string{"a b", strings.Repeat("k", 33), "é", "score:1"} {
		got := webTopic(k)
		if len(got) != 32 || got != webTopic(k) || got == k {
			t.Fatalf("%q → %q", k, got)
		}
		for i := 0; i < len(got); i++ {
			c := got[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				t.Fatalf("%q not base64url", got)
			}
		}
	}
	if webTopic(strings.Repeat("k", 32)) != strings.Repeat("k", 32) || webTopic("") != "" {
		t.Fatal("a fitting key is kept")
	}
	if webTopic("x y") == webTopic("x z") {
		t.Fatal("distinct keys collide")
	}
}

func TestRenderSizeLimits(t *testing.T) {
	// Just within and just over each provider's limit.
	fill := func(block string, n int) string { return strings.Replace(block, "FILL", strings.Repeat("x", n), 1) }
	apns := `{"aps":{"alert":"FILL"}}`
	fcm := `{"data":{"k":"FILL"}}`
	web := `{"data":{"k":"FILL"}}`
	for _, tc := range []struct {
		provider, field, block string
		limit                  int
	}{
		{"apns", "apns", apns, MaxAPNsPayload},
		{"fcm", "fcm", fcm, MaxFCMMessage},
		{"web", "web", web, MaxWebPayload},
	} {
		over := len(tc.block) - len("FILL")
		ok := `{"recipient":{"users":["u"]},"` + tc.field + `":` + fill(tc.block, tc.limit-over) + `}`
		if _, e := ParsePublish([]byte(ok), "", publishNow); e != nil {
			t.Fatalf("%s at the limit: %v", tc.provider, e)
		}
		bad := `{"recipient":{"users":["u"]},"` + tc.field + `":` + fill(tc.block, tc.limit-over+1) + `}`
		_, e := ParsePublish([]byte(bad), "", publishNow)
		if e == nil || e.status != 413 || !strings.Contains(e.descr, tc.provider) {
			t.Fatalf("%s over the limit: %v", tc.provider, e)
		}
	}
}
