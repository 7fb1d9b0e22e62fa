package fcm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/push/internal/h2"
)

// DefaultEndpoint is FCM's API base; Send appends
// /v1/projects/{project_id}/messages:send.
const DefaultEndpoint = "https://fcm.googleapis.com"

// Scope is the OAuth2 scope of the access token.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// Defaults for the zero fields of Config.
const (
	DefaultMaxConnsPerHost = 4
	DefaultIdleConnTimeout = 5 * time.Minute
	DefaultTimeout         = 15 * time.Second
	// tokenEarlyExpiry renews the access token this long before it
	// expires, so no send goes out with a token about to lapse.
	tokenEarlyExpiry = 5 * time.Minute
)

// maxResponse bounds how much of a response body is read.
const maxResponse = 64 << 10

// Config configures a Client. Tests build it literally; main fills it from
// the operator's settings and the app's stored credential.
type Config struct {
	// ServiceAccount is the service-account JSON (type service_account,
	// with project_id, client_email, private_key, private_key_id and
	// token_uri).
	ServiceAccount []byte
	// ProjectID overrides the JSON's project_id; "" keeps it.
	ProjectID string
	// Endpoint is the API base URL; "" means DefaultEndpoint.
	Endpoint string
	// TokenURL overrides the JSON's token_uri; "" keeps it (the JSON's
	// default is https://oauth2.googleapis.com/token).
	TokenURL string
	// MaxConnsPerHost caps connections to the endpoint; each multiplexes
	// many streams. 0 means DefaultMaxConnsPerHost.
	MaxConnsPerHost int
	// IdleConnTimeout closes a connection idle this long. 0 means
	// DefaultIdleConnTimeout.
	IdleConnTimeout time.Duration
	// Timeout bounds one Send, including the retry after a rejected
	// access token, and one token fetch. 0 means DefaultTimeout.
	Timeout time.Duration
	// HTTPClient sends the messages. Nil: a dedicated transport (HTTP/2
	// over TLS, HTTP/1.1 for http:// endpoints).
	HTTPClient *http.Client
	// TokenHTTPClient fetches access tokens. Nil: a client on the same
	// transport as the sends with Timeout.
	TokenHTTPClient *http.Client
	// Now is the clock for Retry-After dates; nil is time.Now. (Access
	// token expiry is x/oauth2's and uses the wall clock.)
	Now func() time.Time
}

// Client sends messages for one service account. It is safe for
// concurrent use.
type Client struct {
	sendURL string
	hc      *http.Client
	owned   *http.Transport // nil when both clients were injected
	timeout time.Duration
	now     func() time.Time
	tokens  *tokenCache
}

// New validates cfg and returns a Client. It starts no goroutines and
// fetches no token.
func New(cfg Config) (*Client, error) {
	jc, err := google.JWTConfigFromJSON(cfg.ServiceAccount, Scope)
	if err != nil {
		return nil, fmt.Errorf("fcm: service account: %w", err)
	}
	var sa struct {
		ProjectID string `json:"project_id"`
	}
	_ = json.Unmarshal(cfg.ServiceAccount, &sa) // JWTConfigFromJSON parsed it already
	project := cfg.ProjectID
	if project == "" {
		project = sa.ProjectID
	}
	if project == "" || strings.ContainsAny(project, "/?#%") {
		return nil, fmt.Errorf("fcm: service account: missing or invalid project_id %q", project)
	}
	if cfg.TokenURL != "" {
		jc.TokenURL = cfg.TokenURL
	}
	if jc.TokenURL == "" {
		jc.TokenURL = google.Endpoint.TokenURL
	}
	if err := checkURL(jc.TokenURL, true); err != nil {
		return nil, fmt.Errorf("fcm: token url: %w", err)
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	if err := checkURL(endpoint, false); err != nil {
		return nil, fmt.Errorf("fcm: endpoint: %w", err)
	}
	c := &Client{
		sendURL: strings.TrimSuffix(endpoint, "/") + "/v1/projects/" + project + "/messages:send",
		hc:      cfg.HTTPClient,
		timeout: cfg.Timeout,
		now:     cfg.Now,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	tokenHC := cfg.TokenHTTPClient
	if c.hc == nil || tokenHC == nil {
		c.owned = h2.Transport(h2.Config{MaxConnsPerHost: cfg.MaxConnsPerHost, IdleConnTimeout: cfg.IdleConnTimeout})
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: c.owned, CheckRedirect: noRedirect}
	}
	if tokenHC == nil {
		tokenHC = &http.Client{Transport: c.owned, CheckRedirect: noRedirect, Timeout: c.timeout}
	}
	// The token source keeps this context for every fetch: it only
	// carries the HTTP client (x/oauth2 takes no per-call context).
	tctx := context.WithValue(context.Background(), oauth2.HTTPClient, tokenHC)
	c.tokens = &tokenCache{newSource: func() oauth2.TokenSource {
		return oauth2.ReuseTokenSourceWithExpiry(nil, jc.TokenSource(tctx), tokenEarlyExpiry)
	}}
	c.tokens.src = c.tokens.newSource()
	return c, nil
}

// noRedirect: FCM and the token endpoint never redirect; following one
// would carry the bearer token or the assertion elsewhere.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func checkURL(s string, pathOK bool) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	if !pathOK && u.Path != "" && u.Path != "/" {
		return fmt.Errorf("%q has a path", s)
	}
	return nil
}

// Close closes idle connections of the dedicated transport. It is
// idempotent; the Client stays usable.
func (c *Client) Close() {
	if c.owned != nil {
		c.owned.CloseIdleConnections()
	}
}

// tokenCache holds the access-token source. A rejected token (HTTP 401)
// replaces the source, once per generation, so concurrent senders that saw
// the same rejection fetch one new token.
type tokenCache struct {
	newSource func() oauth2.TokenSource
	mu        sync.Mutex
	src       oauth2.TokenSource // guarded by mu
	gen       uint64             // guarded by mu; bumped with src
}

func (t *tokenCache) token() (*oauth2.Token, uint64, error) {
	t.mu.Lock()
	src, gen := t.src, t.gen
	t.mu.Unlock()
	tok, err := src.Token() // the source serialises fetches itself
	return tok, gen, err
}

func (t *tokenCache) invalidate(gen uint64) {
	t.mu.Lock()
	if t.gen == gen {
		t.src = t.newSource()
		t.gen++
	}
	t.mu.Unlock()
}

// Send delivers m and classifies the answer. A message that fails local
// validation is not sent. An HTTP 401 without an FcmError (our access
// token was rejected) fetches a new token and retries once. An access-token
// fetch is bounded by Config.Timeout rather than ctx: x/oauth2 takes no
// per-call context, and concurrent senders wait for the one fetch.
func (c *Client) Send(ctx context.Context, m Message) push.Result {
	if m.Token == "" {
		return push.Result{Outcome: push.CallerError, Reason: "missing registration token"}
	}
	if len(m.Body) > MaxMessage {
		return push.Result{Outcome: push.CallerError, Reason: "message too large"}
	}
	body, err := request(m)
	if err != nil {
		return push.Result{Outcome: push.CallerError, Reason: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	for retried := false; ; retried = true {
		tok, gen, err := c.tokens.token()
		if err != nil {
			return tokenError(err)
		}
		r, rejected := c.send(ctx, body, tok)
		if !rejected {
			return r
		}
		if retried {
			r.Outcome = push.CredentialProblem
			return r
		}
		c.tokens.invalidate(gen)
	}
}

// send makes one request. rejected reports a 401 without an FcmError.
func (c *Client) send(ctx context.Context, body []byte, tok *oauth2.Token) (r push.Result, rejected bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.sendURL, bytes.NewReader(body))
	if err != nil {
		return push.Result{Outcome: push.CallerError, Reason: "build request"}, false
	}
	req.Header["Content-Type"] = []string{"application/json; charset=utf-8"}
	req.Header["Authorization"] = []string{"Bearer " + tok.AccessToken}
	resp, err := c.hc.Do(req)
	if err != nil {
		return push.TransportFailure(ctx, err), false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	return classify(resp.StatusCode, resp.Header, b, c.now())
}

// tokenError classifies a failed access-token fetch: the token endpoint
// refusing the assertion (4xx other than 429, e.g. invalid_grant for a
// deleted key) is a credential problem; 429, 5xx and network errors are
// transient.
func tokenError(err error) push.Result {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		s := re.Response.StatusCode
		reason := "token endpoint: HTTP " + fmt.Sprint(s)
		if code := oauthErrorCode(re); code != "" {
			reason += " " + code
		}
		if s == http.StatusTooManyRequests || s >= 500 {
			return push.Result{Outcome: push.ProviderTransient, Reason: reason}
		}
		return push.Result{Outcome: push.CredentialProblem, Reason: reason}
	}
	if strings.Contains(err.Error(), "cannot fetch token") {
		return push.Result{Outcome: push.ProviderTransient, Reason: "token endpoint: network error"}
	}
	// Anything else is local: an unusable private key.
	return push.Result{Outcome: push.CredentialProblem, Reason: "access token: " + err.Error()}
}

// oauthErrorCode is the RFC 6749 §5.2 error code of a token endpoint
// answer ("invalid_grant", …), or "" when there is none or it is not a
// plain code (the body is not echoed).
func oauthErrorCode(re *oauth2.RetrieveError) string {
	code := re.ErrorCode
	if code == "" {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(re.Body, &e)
		code = e.Error
	}
	if len(code) > 64 {
		return ""
	}
	for _, c := range code {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return ""
		}
	}
	return code
}
