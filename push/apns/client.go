package apns

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/push/internal/h2"
)

// Endpoints. Config.Endpoint takes "production", "development" or a URL.
const (
	ProductionURL  = "https://api.push.apple.com"
	DevelopmentURL = "https://api.sandbox.push.apple.com"
)

// Local limits (spec §2.1).
const (
	// MaxPayload is the largest payload APNs accepts, in bytes.
	MaxPayload = 4096
	// MaxVoIPPayload is the largest payload of a voip push, in bytes.
	MaxVoIPPayload = 5120
	// MaxCollapseID is the longest apns-collapse-id, in bytes.
	MaxCollapseID = 64
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxConnsPerHost = 4
	DefaultIdleConnTimeout = 5 * time.Minute
	DefaultTimeout         = 15 * time.Second
)

// tokenUpdatesBackoff is the wait after 429 TooManyProviderTokenUpdates
// when APNs sends no Retry-After: long enough for the update window to
// pass, short against a publish's expiry.
const tokenUpdatesBackoff = time.Minute

// maxResponse bounds how much of an error body is read.
const maxResponse = 64 << 10

// Config configures a Client. Tests build it literally; main fills it from
// the operator's settings and the app's stored credential.
type Config struct {
	// TeamID, KeyID and Key (the .p8 PEM) are the credential. They are
	// ignored when Tokens is set.
	TeamID, KeyID string
	Key           []byte
	// Tokens, when set, is a token cache shared with other Clients of the
	// same key. Nil: the Client makes its own from TeamID, KeyID and Key.
	Tokens *ProviderTokens
	// Endpoint is "production" (also the zero value), "development", or
	// an http(s) URL. https forces HTTP/2 over TLS; http means HTTP/2
	// cleartext (h2c, prior knowledge), for tests.
	Endpoint string
	// MaxConnsPerHost caps connections to APNs; each multiplexes many
	// streams. 0 means DefaultMaxConnsPerHost.
	MaxConnsPerHost int
	// IdleConnTimeout closes a connection idle this long. 0 means
	// DefaultIdleConnTimeout.
	IdleConnTimeout time.Duration
	// Timeout bounds one Send, including the one retry after
	// ExpiredProviderToken. 0 means DefaultTimeout; negative means none
	// (ctx alone).
	Timeout time.Duration
	// HTTPClient replaces the dedicated transport (tests pass an
	// httptest server's client). Nil: a dedicated HTTP/2 transport.
	HTTPClient *http.Client
	// Now is the clock for tokens and Retry-After dates; nil is time.Now.
	// It is used for the provider tokens only when Tokens is nil.
	Now func() time.Time
}

// Client sends notifications for one credential to one endpoint. It is
// safe for concurrent use.
type Client struct {
	base    string // endpoint URL without a trailing slash
	hc      *http.Client
	owned   *http.Transport // nil when HTTPClient was injected
	tokens  *ProviderTokens
	timeout time.Duration
	now     func() time.Time
}

// ResolveEndpoint maps an endpoint setting to a base URL.
func ResolveEndpoint(s string) (string, error) {
	switch s {
	case "", "production":
		return ProductionURL, nil
	case "development":
		return DevelopmentURL, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("apns: endpoint %q: want production, development or an http(s) URL without path", s)
	}
	return u.Scheme + "://" + u.Host, nil
}

// New validates cfg and returns a Client. It starts no goroutines and
// opens no connection.
func New(cfg Config) (*Client, error) {
	base, err := ResolveEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	tokens := cfg.Tokens
	if tokens == nil {
		if tokens, err = NewProviderTokens(cfg.TeamID, cfg.KeyID, cfg.Key, now); err != nil {
			return nil, err
		}
	}
	c := &Client{base: base, hc: cfg.HTTPClient, tokens: tokens, timeout: cfg.Timeout, now: now}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.hc == nil {
		c.owned = h2.Transport(h2.Config{Only: true, Cleartext: strings.HasPrefix(base, "http://"),
			MaxConnsPerHost: cfg.MaxConnsPerHost, IdleConnTimeout: cfg.IdleConnTimeout})
		c.hc = &http.Client{
			Transport: c.owned,
			// APNs never redirects; a redirect would carry the token
			// elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return c, nil
}

// Close closes idle connections of the dedicated transport. It is
// idempotent; the Client stays usable (a later Send dials again).
func (c *Client) Close() {
	if c.owned != nil {
		c.owned.CloseIdleConnections()
	}
}

// Notification is one notification to one device. The zero values of the
// optional fields leave their header out.
type Notification struct {
	// Token is the device token in hex. Never logged.
	Token string
	// Topic is the apns-topic, usually the bundle id. Required.
	Topic string
	// PushType is the apns-push-type ("alert", "background", "voip", …).
	// "" leaves it out.
	PushType string
	// Priority is the apns-priority: 10, 5 or 1; 0 leaves it out (APNs
	// then uses 10).
	Priority int
	// Expiration is the apns-expiration; the zero time sends "0": try
	// once, don't store.
	Expiration time.Time
	// CollapseID is the apns-collapse-id, at most MaxCollapseID bytes.
	CollapseID string
	// ID is the apns-id, a canonical UUID; "" lets APNs make one.
	ID string
	// Payload is the JSON body, at most MaxPayload bytes (MaxVoIPPayload
	// for voip). It is not modified, so one payload can be shared by
	// concurrent sends.
	Payload []byte
}

// Send delivers n and classifies the answer. A notification that fails
// local validation is not sent. On 403 ExpiredProviderToken it retries
// once with a new token when the used one is at least MinTokenAge old.
func (c *Client) Send(ctx context.Context, n *Notification) push.Result {
	if r, ok := validate(n); !ok {
		return r
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	tok, err := c.tokens.token()
	if err != nil {
		return push.Result{Outcome: push.CredentialProblem, Reason: "provider token: " + err.Error()}
	}
	for retried := false; ; retried = true {
		r, expired := c.send(ctx, n, tok.jwt)
		if !expired || retried {
			return r
		}
		if tok, err = c.tokens.expired(tok); err != nil || tok == nil {
			return r
		}
	}
}

// send makes one request. expired reports 403 ExpiredProviderToken.
func (c *Client) send(ctx context.Context, n *Notification, jwt string) (r push.Result, expired bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/3/device/"+n.Token, bytes.NewReader(n.Payload))
	if err != nil {
		return push.Result{Outcome: push.CallerError, Reason: "build request"}, false
	}
	h := req.Header
	h["authorization"] = []string{"bearer " + jwt}
	h["apns-topic"] = []string{n.Topic}
	if n.PushType != "" {
		h["apns-push-type"] = []string{n.PushType}
	}
	if n.Priority != 0 {
		h["apns-priority"] = []string{strconv.Itoa(n.Priority)}
	}
	exp := "0"
	if !n.Expiration.IsZero() {
		exp = strconv.FormatInt(n.Expiration.Unix(), 10)
	}
	h["apns-expiration"] = []string{exp}
	if n.CollapseID != "" {
		h["apns-collapse-id"] = []string{n.CollapseID}
	}
	if n.ID != "" {
		h["apns-id"] = []string{n.ID}
	}
	h["content-type"] = []string{"application/json"}

	resp, err := c.hc.Do(req)
	if err != nil {
		return push.TransportFailure(ctx, err), false
	}
	defer resp.Body.Close()
	r = classify(resp, c.now())
	return r, r.Status == http.StatusForbidden && r.Reason == "ExpiredProviderToken"
}

// validate checks n locally. ok is false with the Result to return.
func validate(n *Notification) (r push.Result, ok bool) {
	bad := func(reason string) (push.Result, bool) {
		return push.Result{Outcome: push.CallerError, Reason: reason}, false
	}
	if !validToken(n.Token) {
		// APNs would answer 400 BadDeviceToken to this token, so it is
		// classified the same way; the spike guard covers a mass of them.
		return push.Result{Outcome: push.DeviceGone, Reason: "BadDeviceToken"}, false
	}
	limit := MaxPayload
	if n.PushType == "voip" {
		limit = MaxVoIPPayload
	}
	switch {
	case len(n.Payload) == 0:
		return bad("PayloadEmpty")
	case len(n.Payload) > limit:
		return bad("PayloadTooLarge")
	case n.Topic == "":
		return bad("MissingTopic")
	case len(n.CollapseID) > MaxCollapseID:
		return bad("BadCollapseId")
	case n.Priority != 0 && n.Priority != 10 && n.Priority != 5 && n.Priority != 1:
		return bad("BadPriority")
	case n.ID != "" && !validUUID(n.ID):
		return bad("BadMessageId")
	case !validHeader(n.Topic) || !validHeader(n.PushType) || !validHeader(n.CollapseID):
		return bad("invalid header value")
	}
	return push.Result{}, true
}

// validToken: non-empty even-length hex, at most 200 bytes decoded.
func validToken(t string) bool {
	if t == "" || len(t)%2 != 0 || len(t) > 400 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if _, ok := hexVal(t[i]); !ok {
			return false
		}
	}
	return true
}

func hexVal(b byte) (byte, bool) {
	switch {
	case '0' <= b && b <= '9':
		return b - '0', true
	case 'a' <= b && b <= 'f':
		return b - 'a' + 10, true
	case 'A' <= b && b <= 'F':
		return b - 'A' + 10, true
	}
	return 0, false
}

// validUUID: the canonical 8-4-4-4-12 hex form.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return false
			}
			continue
		}
		if _, ok := hexVal(s[i]); !ok {
			return false
		}
	}
	return true
}

// validHeader rejects control characters, which net/http would refuse
// with an error naming the request.
func validHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7f {
			return false
		}
	}
	return true
}
