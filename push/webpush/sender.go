package webpush

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/sockudo/sockudo/internal/backoff"
	"github.com/sockudo/sockudo/internal/netguard"
	"github.com/sockudo/sockudo/push"
)

// Payload and TTL defaults.
const (
	// DefaultMaxPayload is the default plaintext limit: 2967 bytes, so the
	// encrypted body (plus Overhead) stays within the about 3070 bytes
	// Firefox for Android accepts (spec §2.3); other push services take a
	// full record (MaxRecordPlaintext).
	DefaultMaxPayload = 3070 - Overhead
	// DefaultTTL is how long a push service keeps an undelivered message
	// when Options.TTL is zero: four weeks, what FCM allows at most.
	DefaultTTL = 28 * 24 * time.Hour
	// maxResponseBody bounds what is read of an answer.
	maxResponseBody = 4 << 10
)

// Config is a Sender's configuration.
type Config struct {
	// Key is the VAPID key the subscriptions were made with. Required.
	Key *VAPIDKey
	// Subject is the VAPID sub claim, "mailto:…" or "https://…"
	// (CheckSubject). Required.
	Subject string
	// MaxPayload is the largest plaintext Send accepts, in bytes; zero
	// means DefaultMaxPayload, and more than MaxRecordPlaintext is
	// refused.
	MaxPayload int
	// PadTo pads plaintexts with zeros to a multiple of PadTo bytes
	// (within MaxPayload), hiding their exact size; zero means no padding.
	PadTo int
	// AllowedHosts, when not empty, limits endpoints to push services whose
	// host matches one of these patterns (HostAllowed; DefaultAllowedHosts
	// lists the browsers' services). Empty means any public host. Ignored
	// with AllowLocal.
	AllowedHosts []string
	// AllowLocal accepts http endpoints and IP literal hosts: tests and
	// development only (PUSH_ALLOW_LOCAL_WEB_PUSH_ENDPOINTS). The
	// dial-time address check is the HTTP client's (HTTPConfig.AllowLocal).
	AllowLocal bool
	// Now is the clock for VAPID tokens and Retry-After dates; nil means
	// time.Now.
	Now func() time.Time
}

// Sender sends Web Push notifications with one VAPID key. It is safe for
// concurrent use and holds no goroutines: there is nothing to close (the
// HTTP client is the caller's to share).
type Sender struct {
	client     *http.Client
	vapid      *vapidSigner
	maxPayload int
	padTo      int
	allowLocal bool
	allowHosts []string
	now        func() time.Time
}

// New validates cfg and returns a Sender sending through hc, which should
// come from NewHTTPClient and be shared by all Senders; nil means a client
// of its own with the defaults and cfg.AllowLocal.
func New(cfg Config, hc *http.Client) (*Sender, error) {
	var errs []error
	if cfg.Key == nil {
		errs = append(errs, errors.New("webpush: a VAPID key is required"))
	}
	if err := CheckSubject(cfg.Subject); err != nil {
		errs = append(errs, err)
	}
	maxPayload := cfg.MaxPayload
	if maxPayload == 0 {
		maxPayload = DefaultMaxPayload
	}
	if maxPayload < 0 || maxPayload > MaxRecordPlaintext {
		errs = append(errs, fmt.Errorf("webpush: MaxPayload %d out of 1..%d", cfg.MaxPayload, MaxRecordPlaintext))
	}
	if cfg.PadTo < 0 {
		errs = append(errs, fmt.Errorf("webpush: negative PadTo %d", cfg.PadTo))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if hc == nil {
		hc = NewHTTPClient(HTTPConfig{AllowLocal: cfg.AllowLocal})
	}
	return &Sender{
		client:     hc,
		vapid:      newVAPIDSigner(cfg.Key, cfg.Subject, now),
		maxPayload: maxPayload,
		padTo:      cfg.PadTo,
		allowLocal: cfg.AllowLocal,
		allowHosts: slices.Clone(cfg.AllowedHosts),
		now:        now,
	}, nil
}

// PublicKey is the sender's VAPID public key (VAPIDKey.PublicKey).
func (s *Sender) PublicKey() string { return s.vapid.key.PublicKey() }

// Urgency is the RFC 8030 §5.3 Urgency header.
type Urgency string

// Urgencies. The zero Urgency sends no header, which push services treat
// as normal.
const (
	UrgencyVeryLow Urgency = "very-low"
	UrgencyLow     Urgency = "low"
	UrgencyNormal  Urgency = "normal"
	UrgencyHigh    Urgency = "high"
)

// Options are one notification's delivery headers (RFC 8030 §5).
type Options struct {
	// TTL is how long the push service keeps the message for an offline
	// user agent, in whole seconds. Zero means DefaultTTL; a negative TTL
	// sends "TTL: 0": deliver now or drop.
	TTL time.Duration
	// Urgency is very-low, low, normal or high; empty sends none.
	Urgency Urgency
	// Topic replaces a pending message with the same topic: at most 32
	// characters of the base64url alphabet; empty sends none.
	Topic string
}

// MaxTopicLength is the longest Topic (RFC 8030 §5.4).
const MaxTopicLength = 32

func (o Options) check() error {
	switch o.Urgency {
	case "", UrgencyVeryLow, UrgencyLow, UrgencyNormal, UrgencyHigh:
	default:
		return errors.New("urgency must be very-low, low, normal or high")
	}
	if len(o.Topic) > MaxTopicLength {
		return fmt.Errorf("topic longer than %d characters", MaxTopicLength)
	}
	for i := 0; i < len(o.Topic); i++ {
		if c := o.Topic[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return errors.New("topic must use the base64url alphabet")
		}
	}
	return nil
}

func (o Options) ttlHeader() string {
	switch {
	case o.TTL < 0:
		return "0"
	case o.TTL == 0:
		return strconv.FormatInt(int64(DefaultTTL/time.Second), 10)
	}
	return strconv.FormatInt(max(1, int64(o.TTL/time.Second)), 10)
}

// Send encrypts payload for sub and posts it to sub's endpoint, and
// classifies the answer (package doc, spec §3.3). Everything checkable
// locally (options, payload size, endpoint rules, keys) is checked before
// anything is sent and fails as CallerError. payload is only read, so one
// payload may be sent to many subscriptions concurrently. ctx bounds the
// request with the client's timeout.
func (s *Sender) Send(ctx context.Context, sub Subscription, payload []byte, opts Options) push.Result {
	if err := opts.check(); err != nil {
		return callerError(err.Error())
	}
	if len(payload) > s.maxPayload {
		return callerError(fmt.Sprintf("payload too large: %d bytes, limit %d", len(payload), s.maxPayload))
	}
	if err := CheckEndpoint(sub.Endpoint, s.allowLocal); err != nil {
		return callerError(err.Error())
	}
	if !s.allowLocal && len(s.allowHosts) > 0 && !HostAllowed(sub.Endpoint, s.allowHosts) {
		return callerError(ErrEndpointNotAllowed.Error() + ": push service not in the allowed hosts")
	}
	u, err := url.Parse(sub.Endpoint)
	if err != nil { // CheckEndpoint parsed it already
		return callerError(ErrBadEndpoint.Error())
	}
	ua, err := sub.uaPublic()
	if err != nil {
		return callerError(err.Error())
	}
	authz, err := s.vapid.authorization(audience(u))
	if err != nil {
		return push.Result{Outcome: push.CredentialProblem, Reason: "vapid: signing failed"}
	}
	body, err := encrypt(ua, sub.Auth, payload, paddedSize(len(payload), s.padTo, s.maxPayload))
	if err != nil {
		return callerError(err.Error())
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err != nil {
		return callerError(ErrBadEndpoint.Error())
	}
	h := req.Header
	h.Set("TTL", opts.ttlHeader())
	if opts.Urgency != "" {
		h.Set("Urgency", string(opts.Urgency))
	}
	if opts.Topic != "" {
		h.Set("Topic", opts.Topic)
	}
	h.Set("Content-Encoding", "aes128gcm")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Authorization", authz)

	resp, err := s.client.Do(req)
	if err != nil {
		return transportFailure(err)
	}
	defer resp.Body.Close()
	r := classify(resp, s.now())
	// Drain what is left (bounded) so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	return r
}

func callerError(reason string) push.Result {
	return push.Result{Outcome: push.CallerError, Reason: reason}
}

// classify turns a push service's answer into a Result (spec §2.3, §3.3).
func classify(resp *http.Response, now time.Time) push.Result {
	code := resp.StatusCode
	r := push.Result{Status: code}
	switch {
	case code >= 200 && code < 300: // 201 Created; some services say 200 or 202
		r.Outcome = push.Delivered
		r.MessageID = resp.Header.Get("Location")
		return r
	case code == http.StatusNotFound || code == http.StatusGone:
		r.Outcome = push.DeviceGone
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		r.Outcome = push.CredentialProblem
	case code == http.StatusTooManyRequests:
		r.Outcome = push.ProviderQuota
		r.RetryAfter = backoff.RetryAfter(resp.Header.Get("Retry-After"), now)
	case code >= 500 || code == http.StatusRequestTimeout:
		r.Outcome = push.ProviderTransient
		r.RetryAfter = backoff.RetryAfter(resp.Header.Get("Retry-After"), now)
	default: // 400, 413 and the rest of 4xx; a 3xx, since redirects are not followed
		r.Outcome = push.CallerError
	}
	r.Reason = reasonOf(resp)
	return r
}

// reasonOf reads a bounded reason code from an error answer: Apple's
// {"reason":"BadJwtToken"}, Mozilla's {"errno":…}, or else the status
// text. Free text is never taken: it could echo the endpoint.
func reasonOf(resp *http.Response) string {
	var v struct {
		Reason string      `json:"reason"`
		Errno  json.Number `json:"errno"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(&v) == nil {
		if isToken(v.Reason) {
			return v.Reason
		}
		if _, err := v.Errno.Int64(); err == nil {
			return "errno " + v.Errno.String()
		}
	}
	if t := http.StatusText(resp.StatusCode); t != "" {
		return t
	}
	return "status " + strconv.Itoa(resp.StatusCode)
}

// isToken reports whether s looks like a reason code: 1-64 letters,
// digits, '_', '-' or '.'.
func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// transportFailure classifies a request that got no answer. The error's
// text is not used: net/http's quotes the URL, which holds the token.
func transportFailure(err error) push.Result {
	r := push.Result{Outcome: push.ProviderTransient}
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		opErr   *net.OpError
		netErr  net.Error
	)
	switch {
	case errors.Is(err, netguard.ErrForbidden):
		// The endpoint's name resolves to a non-public address: retrying
		// will not change that, and the device is not known to be gone.
		r.Outcome, r.Reason = push.CallerError, "endpoint address not allowed"
	case errors.Is(err, context.Canceled):
		r.Reason = "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		r.Reason = "timeout"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			r.Reason = "dns: no such host"
		} else {
			r.Reason = "dns: lookup failed"
		}
	case errors.As(err, &certErr):
		r.Reason = "tls: certificate not trusted"
	case errors.As(err, &opErr):
		r.Reason = "network: " + opErr.Op + " failed"
	default:
		r.Reason = "network error"
	}
	return r
}
