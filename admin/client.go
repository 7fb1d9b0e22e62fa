package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// Client calls the admin API of a running server over its unix socket.
// Its methods mirror storage.DB's, returning the same sentinel errors.
type Client struct {
	hc *http.Client
}

// ErrNoServer means nothing answers on the admin socket.
var ErrNoServer = errors.New("admin: no running server answers on the admin socket")

// Dial connects to the socket at path and checks that a server answers.
func Dial(path string) (*Client, error) {
	c := &Client{hc: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
	if err := c.do("GET", "/ping", nil, nil); err != nil {
		return nil, fmt.Errorf("%w (%s): %v", ErrNoServer, path, err)
	}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// Raw sends body (nil for none) to path and returns the answer as it is:
// for APIs that the admin socket passes through (push credentials), whose
// errors are their own.
func (c *Client) Raw(method, path string, body []byte) (status int, answer []byte, err error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://admin"+path, r)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, answer, err
}

func (c *Client) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://admin"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		_ = json.Unmarshal(b, &e)
		for _, k := range kinds {
			if e.Kind == k.kind {
				return fmt.Errorf("%w (%s)", k.err, e.Error)
			}
		}
		return fmt.Errorf("admin: %s %s: %d %s", method, path, resp.StatusCode, e.Error)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Apps lists every app, without secrets (Secret and PreviousSecret are
// empty).
func (c *Client) Apps() ([]storage.App, error) {
	var apps []storage.App
	return apps, c.do("GET", "/apps", nil, &apps)
}

// App returns one app, without secrets.
func (c *Client) App(id string) (storage.App, error) {
	var a storage.App
	return a, c.do("GET", "/apps/"+url.PathEscape(id), nil, &a)
}

// CreateApp creates a.
func (c *Client) CreateApp(a storage.App) error { return c.do("POST", "/apps", a, nil) }

// PutApp creates or replaces a; an empty a.Secret keeps the stored app's
// secrets, so an app read with App can be changed and written back.
func (c *Client) PutApp(a storage.App) error {
	return c.do("PUT", "/apps/"+url.PathEscape(a.ID), a, nil)
}

// DeleteApp deletes an app.
func (c *Client) DeleteApp(id string) error {
	return c.do("DELETE", "/apps/"+url.PathEscape(id), nil, nil)
}

// RotateSecret gives an app a new secret (generated when empty), keeping
// the old one valid for grace, and returns the app.
func (c *Client) RotateSecret(id, secret string, grace time.Duration) (storage.App, error) {
	var a storage.App
	err := c.do("POST", "/apps/"+url.PathEscape(id)+"/rotate-secret",
		RotateRequest{Secret: secret, GraceSeconds: int64(grace / time.Second)}, &a)
	return a, err
}

// BeamsKey generates, rotates (keeping the old key valid for grace) or
// revokes an app's Beams secret key (apps.Service.BeamsKey) and returns
// the app with its Beams keys and without its secrets.
func (c *Client) BeamsKey(id, op string, grace time.Duration) (storage.App, error) {
	var a storage.App
	err := c.do("POST", "/apps/"+url.PathEscape(id)+"/beams-key",
		BeamsKeyRequest{Op: op, GraceSeconds: int64(grace / time.Second)}, &a)
	return a, err
}

// Audit returns audit entries, newest first.
func (c *Client) Audit(f storage.AuditFilter) ([]storage.AuditEntry, error) {
	q := url.Values{}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339))
	}
	if f.App != "" {
		q.Set("app", f.App)
	}
	if f.Action != "" {
		q.Set("action", f.Action)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var entries []storage.AuditEntry
	return entries, c.do("GET", "/audit?"+q.Encode(), nil, &entries)
}

// DeadLetters lists webhook dead letters of app ("" = every app), oldest
// first; limit 0 means all.
func (c *Client) DeadLetters(app string, limit int) ([]storage.DeadLetter, error) {
	q := url.Values{}
	if app != "" {
		q.Set("app", app)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var dead []storage.DeadLetter
	return dead, c.do("GET", "/webhooks/dead-letters?"+q.Encode(), nil, &dead)
}

// ReplayDeadLetters moves dead letters back into the running server's
// webhook queue.
func (c *Client) ReplayDeadLetters(app string, ids []uint64) (ReplayResult, error) {
	var res ReplayResult
	return res, c.do("POST", "/webhooks/dead-letters/replay", ReplayRequest{App: app, IDs: ids}, &res)
}
