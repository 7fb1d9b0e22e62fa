package push

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
)

// Request body bounds of the client API: small everywhere but where a
// device replaces its whole interest set (5000 names of up to 164 bytes).
const (
	clientBodyLimit    = 16 << 10
	interestsBodyLimit = 1 << 20
	// maxPageLimit bounds ?limit= of the lists.
	maxPageLimit = 1000
)

// DeviceSecretHeader carries the device secret on the client API.
const DeviceSecretHeader = "X-Device-Secret"

// deviceRoutes are the device and subscription routes of the server API
// (spec §4.1, §4.3).
func (s *Service) deviceRoutes() []SignedRoute {
	return []SignedRoute{
		{"POST /apps/{app_id}/push/devices", s.signed(s.serverRegister)},
		{"GET /apps/{app_id}/push/devices", s.signed(s.serverList)},
		{"GET /apps/{app_id}/push/devices/{device_id}", s.signed(s.serverGet)},
		{"PATCH /apps/{app_id}/push/devices/{device_id}", s.signed(s.serverPatch)},
		{"DELETE /apps/{app_id}/push/devices/{device_id}", s.signed(s.serverDelete)},
		{"GET /apps/{app_id}/push/devices/{device_id}/interests", s.signed(s.serverDeviceInterests)},
		{"PUT /apps/{app_id}/push/devices/{device_id}/interests", s.signed(s.serverSetDeviceInterests)},
		{"GET /apps/{app_id}/push/devices/{device_id}/channels", s.signed(s.serverDeviceChannels)},
		{"PUT /apps/{app_id}/push/devices/{device_id}/channels/{channel}", s.signed(s.serverSubscribe)},
		{"DELETE /apps/{app_id}/push/devices/{device_id}/channels/{channel}", s.signed(s.serverUnsubscribe)},
		{"GET /apps/{app_id}/push/users/{user_id}/devices", s.signed(s.serverUserDevices)},
		{"DELETE /apps/{app_id}/push/users/{user_id}", s.signed(s.serverDeleteUser)},
		{"GET /apps/{app_id}/push/users/{user_id}/interests", s.signed(s.serverUserInterests)},
		{"PUT /apps/{app_id}/push/users/{user_id}/interests", s.signed(s.serverSetUserInterests)},
		{"GET /apps/{app_id}/push/channels/{channel}/devices", s.signed(s.serverChannelDevices)},
		{"DELETE /apps/{app_id}/push/channels/{channel}/subscriptions", s.signed(s.serverRevokeChannel)},
	}
}

// clientRoutes are the client API routes devices call (spec §4.2). Every
// route but registration needs the device secret, checked before the body
// is read; the routes that change the device are also rate limited per
// device (Limits.DeviceRequests). Binding a user and subscribing to a
// private or presence channel also need a signature of the app's secret
// over a challenge.
func (s *Service) clientRoutes() []Route {
	const p = "/apps/{app_id}/push/client/devices"
	const read, write = false, true
	return []Route{
		{"POST " + p, s.clientRegistration(s.client(clientBodyLimit, s.clientRegister))},
		{"GET " + p + "/{device_id}", s.asClient(read, clientBodyLimit, s.clientGet)},
		{"DELETE " + p + "/{device_id}", s.asClient(read, clientBodyLimit, s.clientDelete)},
		{"POST " + p + "/{device_id}/challenge", s.asClient(write, clientBodyLimit, s.clientChallenge)},
		{"PUT " + p + "/{device_id}/user", s.asClient(write, clientBodyLimit, s.clientBindUser)},
		{"DELETE " + p + "/{device_id}/user", s.asClient(write, clientBodyLimit, s.clientUnbindUser)},
		{"PUT " + p + "/{device_id}/token", s.asClient(write, clientBodyLimit, s.clientToken)},
		{"GET " + p + "/{device_id}/interests", s.asClient(read, clientBodyLimit, s.clientInterests)},
		{"PUT " + p + "/{device_id}/interests", s.asClient(write, interestsBodyLimit, s.clientSetInterests)},
		{"POST " + p + "/{device_id}/interests/{interest}", s.asClient(write, clientBodyLimit, s.clientAddInterest)},
		{"DELETE " + p + "/{device_id}/interests/{interest}", s.asClient(write, clientBodyLimit, s.clientRemoveInterest)},
		{"GET " + p + "/{device_id}/channels", s.asClient(read, clientBodyLimit, s.clientChannels)},
		{"PUT " + p + "/{device_id}/channels/{channel}", s.asClient(write, clientBodyLimit, s.clientSubscribe)},
		{"DELETE " + p + "/{device_id}/channels/{channel}", s.asClient(write, clientBodyLimit, s.clientUnsubscribe)},
	}
}

// handlerFunc is a route's work: the status and body of a success, or an
// error to answer.
type handlerFunc func(r *http.Request, appID string, body []byte) (int, any, *apiError)

// signed adapts fn to a signed route (the server has checked the app, the
// signature and the body bound).
func (s *Service) signed(fn handlerFunc) func(http.ResponseWriter, *http.Request, string, []byte) {
	return func(w http.ResponseWriter, r *http.Request, appID string, body []byte) {
		status, v, e := fn(r, appID, body)
		reply(w, status, v, e)
	}
}

// client adapts fn to a client route: a known, enabled app and a body of at
// most limit bytes.
func (s *Service) client(limit int64, fn handlerFunc) http.Handler {
	return s.clientRoute(false, false, limit, fn)
}

// asClient adapts fn to a client route that takes the device secret: a
// known, enabled app, the device's secret checked before anything else (a
// read transaction), then, when mutating, the device's request budget
// (Limits.DeviceRequests, keyed by app and device, so only the device's
// own requests spend it), and only then a body of at most limit bytes.
// fn checks the secret again in its own transaction.
func (s *Service) asClient(mutating bool, limit int64, fn handlerFunc) http.Handler {
	return s.clientRoute(true, mutating, limit, fn)
}

func (s *Service) clientRoute(device, mutating bool, limit int64, fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		appID := r.PathValue("app_id")
		if _, _, ok := s.apps.AppCredentials(appID); !ok {
			replyError(w, errorf(404, "not_found", "no such app"))
			return
		}
		if device {
			if _, e := s.asDevice(r, appID); e != nil {
				replyError(w, e)
				return
			}
		}
		if mutating {
			if e := s.deviceRequestAllowed(appID, r.PathValue("device_id")); e != nil {
				replyError(w, e)
				return
			}
		}
		body, e := readBody(w, r, limit)
		if e != nil {
			replyError(w, e)
			return
		}
		status, v, e := fn(r, appID, body)
		reply(w, status, v, e)
	})
}

// clientRegistration puts the per-app, per-IP registration limit in front
// of next (for a known app only, so unknown ids fill no limiter).
func (s *Service) clientRegistration(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := s.apps.AppCredentials(r.PathValue("app_id")); ok && !s.registrationAllowed(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

func reply(w http.ResponseWriter, status int, v any, e *apiError) {
	switch {
	case e != nil:
		replyError(w, e)
	case v == nil:
		w.WriteHeader(status)
	default:
		replyJSON(w, status, v)
	}
}

// DeviceView is a device as the API and the CLI show it: the token only as
// its hash and last 6 characters, never the device secret.
type DeviceView struct {
	ID string `json:"id"`
	// App is set by the CLI, which lists devices of any app.
	App             string          `json:"app_id,omitempty"`
	Platform        string          `json:"platform"`
	TokenHash       string          `json:"token_hash"`
	TokenLast6      string          `json:"token_last6"`
	Environment     string          `json:"environment,omitempty"`
	Topic           string          `json:"topic,omitempty"`
	VAPIDKeyVersion int             `json:"vapid_key_version,omitempty"`
	UserID          string          `json:"user_id,omitempty"`
	Interests       []string        `json:"interests,omitempty"`
	UserInterests   []string        `json:"user_interests,omitempty"`
	InterestCount   int             `json:"interest_count"`
	Channels        []channelView   `json:"channels"`
	Metadata        json.RawMessage `json:"metadata,omitempty"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
	LastSeenAt      time.Time       `json:"last_seen_at,omitzero"`
}

type channelView struct {
	Channel      string    `json:"channel"`
	AuthorizedAt time.Time `json:"authorized_at"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
}

// ViewOf shows d; lists leave the interests out (up to 5000 a device).
func ViewOf(d *storage.Device, withInterests bool) DeviceView {
	last := d.Token
	if len(last) > 6 {
		last = last[len(last)-6:]
	}
	v := DeviceView{ID: d.ID, Platform: d.Platform, TokenHash: d.TokenHash, TokenLast6: last,
		Environment: d.Environment, Topic: d.Topic, VAPIDKeyVersion: d.VAPIDKeyVersion, UserID: d.UserID,
		InterestCount: len(d.AllInterests()), Channels: channelsOf(d), Metadata: d.Metadata,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, LastSeenAt: d.LastSeen}
	if withInterests {
		v.Interests, v.UserInterests = d.Interests, d.UserInterests
	}
	return v
}

func channelsOf(d *storage.Device) []channelView {
	out := []channelView{}
	for _, c := range d.Channels {
		out = append(out, channelView(c))
	}
	return out
}

func interestsBody(d *storage.Device) any {
	return map[string][]string{"interests": nonNil(d.Interests), "user_interests": nonNil(d.UserInterests)}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ---- server API (signed) ----

// registerBody is POST /apps/{app_id}/push/devices.
type registerBody struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
	tokenBody
	UserID    string          `json:"user_id"`
	Interests []string        `json:"interests"`
	Channels  []string        `json:"channels"`
	Metadata  json.RawMessage `json:"metadata"`
}

func (s *Service) serverRegister(r *http.Request, appID string, body []byte) (int, any, *apiError) {
	var in registerBody
	if e := decodeBody(body, &in, false); e != nil {
		return 0, nil, e
	}
	now := s.now().UTC()
	d := storage.Device{ID: in.ID, App: appID, Platform: in.Platform}
	if in.ID != "" && !protocol.ValidChannelName(in.ID, 64) {
		return 0, nil, errorf(400, "bad_request", "id is 1-64 characters of [A-Za-z0-9_-=@,.;]")
	}
	if e := in.tokenBody.apply(&d, s.cfg.Devices.webSubscription); e != nil {
		return 0, nil, e
	}
	if e := checkInterests(in.Interests); e != nil {
		return 0, nil, e
	}
	d.Interests, _ = applyOp(nil, "set", in.Interests)
	for _, ch := range in.Channels {
		if e := checkChannel(ch); e != nil {
			return 0, nil, e
		}
		d.SetChannel(storage.ChannelSub{Channel: ch, AuthorizedAt: now})
	}
	var e *apiError
	if d.Metadata, e = checkMetadata(in.Metadata); e != nil {
		return 0, nil, e
	}
	if in.UserID != "" {
		if e := checkUserID(in.UserID); e != nil {
			return 0, nil, e
		}
		d.UserID = in.UserID // storage gives it the user's interests
	}
	secret, hash := newDeviceSecret()
	d.SecretHash = hash
	saved, created, err := s.db.PutDevice(d, s.limits(appID), now, false)
	if err != nil {
		return 0, nil, storageError(err)
	}
	s.audit.Record(storage.AuditEntry{Time: now, App: appID, Action: ActionDeviceRegistered, UserID: saved.UserID,
		Reason: deviceReason(&saved, "via=server_api")})
	s.log.Debug("push device registered", "app_id", appID, "device_id", saved.ID, "platform", saved.Platform, "created", created)
	v := ViewOf(&saved, true)
	if !created {
		return http.StatusOK, v, nil
	}
	return http.StatusCreated, struct {
		DeviceView
		DeviceSecret string `json:"device_secret"`
	}{v, secret}, nil
}

func (s *Service) serverGet(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	d, err := s.db.Device(appID, r.PathValue("device_id"))
	if err != nil {
		return 0, nil, storageError(err)
	}
	return http.StatusOK, ViewOf(&d, true), nil
}

// patchBody is PATCH /apps/{app_id}/push/devices/{device_id}: absent
// fields are left alone; user_id "" unbinds the user.
type patchBody struct {
	tokenBody
	UserID   *string         `json:"user_id"`
	Metadata json.RawMessage `json:"metadata"`
}

func (s *Service) serverPatch(r *http.Request, appID string, body []byte) (int, any, *apiError) {
	var in patchBody
	if e := decodeBody(body, &in, false); e != nil {
		return 0, nil, e
	}
	if in.UserID != nil && *in.UserID != "" {
		if e := checkUserID(*in.UserID); e != nil {
			return 0, nil, e
		}
	}
	meta, e := checkMetadata(in.Metadata)
	if e != nil {
		return 0, nil, e
	}
	var prev string
	d, err := s.db.UpdateDevice(appID, r.PathValue("device_id"), s.limits(appID), s.now().UTC(), func(d *storage.Device) error {
		prev = d.UserID
		if in.Token != "" || in.Subscription != nil {
			if e := in.tokenBody.apply(d, s.cfg.Devices.webSubscription); e != nil {
				return e
			}
		}
		if meta != nil {
			d.Metadata = meta
		}
		if in.UserID != nil {
			switchUser(d, *in.UserID)
		}
		return nil
	})
	if err != nil {
		return 0, nil, storageError(err)
	}
	s.auditUserChange(r, &d, prev, "via=server_api")
	return http.StatusOK, ViewOf(&d, true), nil
}

// switchUser binds d to user ("" unbinds); storage gives it the user's
// interests in the same transaction.
// Moving from one user to another drops what the previous one had: the
// device's own interests and its channel subscriptions (spec §4.2), so
// nothing authorised for them reaches the next user. Unbinding (logout)
// drops the device's own interests and the subscriptions that needed a
// signature, so the next user inherits neither. Binding a device that had
// no user drops the subscriptions that needed a signature too: nobody's
// revocation (RevokeChannel goes by user) could have reached them.
func switchUser(d *storage.Device, user string) {
	switch {
	case d.UserID == user:
		return
	case user == "":
		d.UserInterests, d.Interests = nil, nil
		dropSignedChannels(d)
	case d.UserID != "":
		d.Interests, d.Channels = nil, nil
	default:
		dropSignedChannels(d)
	}
	d.UserID = user
}

// dropSignedChannels removes d's subscriptions to channels that need a
// signature (private, encrypted, presence).
func dropSignedChannels(d *storage.Device) {
	kept := d.Channels[:0]
	for _, c := range d.Channels {
		if !protocol.Classify(c.Channel).NeedsAuth() {
			kept = append(kept, c)
		}
	}
	d.Channels = kept
}

// auditUserChange audits a device's user binding changing from prev.
func (s *Service) auditUserChange(r *http.Request, d *storage.Device, prev, via string) {
	if d.UserID == prev {
		return
	}
	e := storage.AuditEntry{Time: s.now().UTC(), App: d.App, IP: s.clientIP(r), Action: ActionDeviceUserBound, UserID: d.UserID,
		Reason: deviceReason(d, via)}
	if prev != "" {
		e.Reason += " previous_user=" + prev
	}
	if d.UserID == "" {
		e.Action, e.UserID, e.Reason = ActionDeviceUserUnbound, prev, deviceReason(d, via)
	}
	s.audit.Record(e)
}

func (s *Service) serverDelete(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	d, err := s.db.DeleteDevice(appID, r.PathValue("device_id"))
	if err != nil {
		return 0, nil, storageError(err)
	}
	s.audit.Record(storage.AuditEntry{Time: s.now().UTC(), App: appID, Action: ActionDeviceDeleted, UserID: d.UserID,
		Reason: deviceReason(&d, "via=server_api")})
	return http.StatusNoContent, nil, nil
}

// listPage answers a list of devices: ?platform, ?user_id, ?interest,
// ?channel (those not fixed by the path), ?cursor and ?limit (1-1000,
// default 100).
func (s *Service) listPage(r *http.Request, appID string, f storage.DeviceFilter) (int, any, *apiError) {
	q := r.URL.Query()
	if f.UserID == "" {
		f.UserID = q.Get("user_id")
	}
	if f.Channel == "" {
		f.Channel = q.Get("channel")
	}
	if f.Interest == "" {
		f.Interest = q.Get("interest")
	}
	f.Platform = q.Get("platform")
	limit := 100
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxPageLimit {
			return 0, nil, errorf(400, "bad_request", "limit is 1-%d", maxPageLimit)
		}
		limit = n
	}
	page, next, err := s.db.ListDevices(appID, f, q.Get("cursor"), limit)
	if err != nil {
		if errors.Is(err, storage.ErrInvalid) {
			return 0, nil, errorf(400, "bad_request", "invalid cursor")
		}
		return 0, nil, storageError(err)
	}
	items := make([]DeviceView, 0, len(page))
	for i := range page {
		items = append(items, ViewOf(&page[i], false))
	}
	return http.StatusOK, struct {
		Items      []DeviceView `json:"items"`
		NextCursor string       `json:"next_cursor,omitempty"`
	}{items, next}, nil
}

func (s *Service) serverList(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	return s.listPage(r, appID, storage.DeviceFilter{})
}

func (s *Service) serverUserDevices(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	return s.listPage(r, appID, storage.DeviceFilter{UserID: r.PathValue("user_id")})
}

func (s *Service) serverChannelDevices(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	return s.listPage(r, appID, storage.DeviceFilter{Channel: r.PathValue("channel")})
}

func (s *Service) serverDeviceInterests(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	d, err := s.db.Device(appID, r.PathValue("device_id"))
	if err != nil {
		return 0, nil, storageError(err)
	}
	return http.StatusOK, interestsBody(&d), nil
}

// opBody is {op: add|remove|set, interests: [...]}.
type opBody struct {
	Op        string   `json:"op"`
	Interests []string `json:"interests"`
}

func (in opBody) check() *apiError {
	if _, e := applyOp(nil, in.Op, nil); e != nil {
		return e
	}
	return checkInterests(in.Interests)
}

func (s *Service) serverSetDeviceInterests(r *http.Request, appID string, body []byte) (int, any, *apiError) {
	var in opBody
	if e := decodeBody(body, &in, false); e != nil {
		return 0, nil, e
	}
	if e := in.check(); e != nil {
		return 0, nil, e
	}
	d, err := s.db.UpdateDevice(appID, r.PathValue("device_id"), s.limits(appID), s.now().UTC(), func(d *storage.Device) error {
		d.Interests, _ = applyOp(d.Interests, in.Op, in.Interests)
		return nil
	})
	if err != nil {
		return 0, nil, storageError(err)
	}
	return http.StatusOK, interestsBody(&d), nil
}

func (s *Service) serverDeviceChannels(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	d, err := s.db.Device(appID, r.PathValue("device_id"))
	if err != nil {
		return 0, nil, storageError(err)
	}
	return http.StatusOK, map[string]any{"channels": channelsOf(&d)}, nil
}

// serverSubscribe is a trusted channel subscription: the backend is the
// authority, no signature. Body (optional): {"expires_at": unix seconds}.
func (s *Service) serverSubscribe(r *http.Request, appID string, body []byte) (int, any, *apiError) {
	ch := r.PathValue("channel")
	if e := checkChannel(ch); e != nil {
		return 0, nil, e
	}
	var in struct {
		ExpiresAt int64 `json:"expires_at"`
	}
	if e := decodeBody(body, &in, true); e != nil {
		return 0, nil, e
	}
	now := s.now().UTC()
	sub := storage.ChannelSub{Channel: ch, AuthorizedAt: now}
	if in.ExpiresAt > 0 {
		sub.ExpiresAt = time.Unix(in.ExpiresAt, 0).UTC()
	}
	d, err := s.db.UpdateDevice(appID, r.PathValue("device_id"), s.limits(appID), now, func(d *storage.Device) error {
		d.SetChannel(sub)
		return nil
	})
	if err != nil {
		return 0, nil, storageError(err)
	}
	s.audit.Record(storage.AuditEntry{Time: now, App: appID, Action: ActionChannelSubscribed, Channel: ch, UserID: d.UserID,
		Reason: deviceReason(&d, "via=server_api")})
	return http.StatusOK, channelView(sub), nil
}

func (s *Service) serverUnsubscribe(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	ch := r.PathValue("channel")
	_, err := s.db.UpdateDevice(appID, r.PathValue("device_id"), s.limits(appID), s.now().UTC(), func(d *storage.Device) error {
		d.RemoveChannel(ch)
		return nil
	})
	if err != nil {
		return 0, nil, storageError(err)
	}
	return http.StatusNoContent, nil, nil
}

func (s *Service) serverDeleteUser(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	user := r.PathValue("user_id")
	if e := checkUserID(user); e != nil {
		return 0, nil, e
	}
	gone, err := s.db.DeleteUserDevices(appID, user)
	if err != nil {
		return 0, nil, storageError(err)
	}
	s.audit.Record(storage.AuditEntry{Time: s.now().UTC(), App: appID, Action: ActionUserDevicesDeleted, UserID: user,
		Reason: "devices=" + strconv.Itoa(len(gone))})
	return http.StatusOK, map[string]int{"deleted": len(gone)}, nil
}

func (s *Service) serverUserInterests(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	user := r.PathValue("user_id")
	if e := checkUserID(user); e != nil {
		return 0, nil, e
	}
	set, err := s.db.UserInterests(appID, user)
	if err != nil {
		return 0, nil, storageError(err)
	}
	return http.StatusOK, map[string][]string{"interests": set}, nil
}

func (s *Service) serverSetUserInterests(r *http.Request, appID string, body []byte) (int, any, *apiError) {
	user := r.PathValue("user_id")
	if e := checkUserID(user); e != nil {
		return 0, nil, e
	}
	var in opBody
	if e := decodeBody(body, &in, false); e != nil {
		return 0, nil, e
	}
	if e := in.check(); e != nil {
		return 0, nil, e
	}
	set, err := s.db.SetUserInterests(appID, user, s.limits(appID), s.now().UTC(), func(cur []string) []string {
		out, _ := applyOp(cur, in.Op, in.Interests)
		return out
	})
	if err != nil {
		return 0, nil, storageError(err)
	}
	return http.StatusOK, map[string][]string{"interests": nonNil(set)}, nil
}

// serverRevokeChannel is DELETE …/channels/{channel}/subscriptions?user_id=:
// the user's devices lose their push subscription to the channel (removed
// from a room, say).
func (s *Service) serverRevokeChannel(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	ch, user := r.PathValue("channel"), r.URL.Query().Get("user_id")
	if e := checkChannel(ch); e != nil {
		return 0, nil, e
	}
	if e := checkUserID(user); e != nil {
		return 0, nil, errorf(400, "bad_request", "user_id is required: whose subscriptions to revoke")
	}
	now := s.now().UTC()
	revoked, err := s.db.RevokeChannel(appID, ch, user, now)
	if err != nil {
		return 0, nil, storageError(err)
	}
	s.audit.Record(storage.AuditEntry{Time: now, App: appID, Action: ActionChannelRevoked, Channel: ch, UserID: user,
		Reason: "devices=" + strconv.Itoa(len(revoked))})
	return http.StatusOK, map[string]any{"revoked": len(revoked), "device_ids": nonNil(revoked)}, nil
}

// ---- client API (device secret, signatures over challenges) ----

// clientRegister is POST …/client/devices: rate limited per app and client
// IP, no credentials. A token registered before is refused (409
// token_in_use) unless the request carries that device's secret: then it
// gets the same id back with its state reset (user, interests, channels)
// and a new secret. Knowing a token is not owning its device: without the
// check, whoever learnt a token could take the device over (a new secret,
// its binding and channels wiped). A backend re-registers through the
// server API.
func (s *Service) clientRegister(r *http.Request, appID string, body []byte) (int, any, *apiError) {
	ip := s.clientIP(r)
	var in struct {
		Platform string `json:"platform"`
		tokenBody
		Metadata json.RawMessage `json:"metadata"`
	}
	if e := decodeBody(body, &in, false); e != nil {
		return 0, nil, e
	}
	now := s.now().UTC()
	d := storage.Device{App: appID, Platform: in.Platform, LastSeen: now}
	if e := in.tokenBody.apply(&d, s.cfg.Devices.webSubscription); e != nil {
		return 0, nil, e
	}
	var e *apiError
	if d.Metadata, e = checkMetadata(in.Metadata); e != nil {
		return 0, nil, e
	}
	secret, hash := newDeviceSecret()
	d.SecretHash = hash
	ch := addChallenge(&d, now, s.cfg.Devices.ChallengeTTL)
	presented := r.Header.Get(DeviceSecretHeader)
	saved, created, err := s.db.PutDeviceChecked(d, s.limits(appID), now, true, func(old *storage.Device) error {
		if !secretMatches(old, presented) {
			return errTokenInUse
		}
		return nil
	})
	if errors.Is(err, errTokenInUse) {
		s.audit.Record(storage.AuditEntry{Time: now, App: appID, Action: ActionDeviceAuthDenied, IP: ip,
			Reason: "platform=" + d.Platform + " token_in_use"})
		return 0, nil, errorf(409, "token_in_use", "a device already has this token: re-register with its "+DeviceSecretHeader)
	}
	if err != nil {
		return 0, nil, storageError(err)
	}
	s.audit.Record(storage.AuditEntry{Time: now, App: appID, Action: ActionDeviceRegistered, IP: ip,
		Reason: deviceReason(&saved, "via=client_api")})
	s.log.Debug("push device registered", "app_id", appID, "device_id", saved.ID, "platform", saved.Platform, "created", created)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return status, map[string]any{"id": saved.ID, "platform": saved.Platform, "device_secret": secret,
		"socket_id": ch.SocketID, "expires_at": ch.ExpiresAt}, nil
}

// registrationAllowed checks the per-IP registration limit, the app's
// override if it has one, answering the 429 itself.
func (s *Service) registrationAllowed(w http.ResponseWriter, r *http.Request) bool {
	appID := r.PathValue("app_id")
	d := allowQuota(s.cfg.Limits.Registrations, appID+"\x00"+s.clientIP(r), s.apps.AppPushLimits(appID).RegistrationsPerMinute)
	if rateLimited(w, d) {
		s.audit.Record(storage.AuditEntry{Time: s.now().UTC(), App: appID, Action: "rate_limited",
			IP: s.clientIP(r), Reason: "push_registrations"})
		return false
	}
	return true
}

// quotaLimiter is a limiter that takes a per-call limit (ratelimit.Memory).
type quotaLimiter interface {
	AllowQuota(key string, q ratelimit.Quota) ratelimit.Decision
}

// allowQuota checks key against l, with an app's per-minute override
// instead of l's own limit when it is set and l takes quotas. The key
// holds the app id, so an override changes only that app's buckets.
func allowQuota(l ratelimit.Limiter, key string, perMinute int) ratelimit.Decision {
	if perMinute > 0 {
		if q, ok := l.(quotaLimiter); ok {
			return q.AllowQuota(key, ratelimit.Quota{Limit: perMinute, Window: time.Minute})
		}
	}
	return l.Allow(key)
}

// asDevice reads the device of the path and checks its secret.
func (s *Service) asDevice(r *http.Request, appID string) (storage.Device, *apiError) {
	d, err := s.db.Device(appID, r.PathValue("device_id"))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return d, storageError(err)
	}
	if err != nil || !secretMatches(&d, r.Header.Get(DeviceSecretHeader)) {
		return d, s.deviceDenied(r, appID)
	}
	return d, nil
}

// updateAsDevice changes the device of the path with fn after checking its
// secret, in one transaction, and records that the device was seen.
func (s *Service) updateAsDevice(r *http.Request, appID string, fn func(*storage.Device) *apiError) (storage.Device, *apiError) {
	secret := r.Header.Get(DeviceSecretHeader)
	return s.updateDeviceIf(r, appID, func(d *storage.Device) bool { return secretMatches(d, secret) },
		func() *apiError { return s.deviceDenied(r, appID) }, fn)
}

// updateDeviceIf changes the device of the path with fn if allowed accepts
// it, checked in the same transaction, and records that the device was
// seen; a missing or refused device is answered with denied().
func (s *Service) updateDeviceIf(r *http.Request, appID string, allowed func(*storage.Device) bool,
	denied func() *apiError, fn func(*storage.Device) *apiError) (storage.Device, *apiError) {
	now := s.now().UTC()
	refused := false
	d, err := s.db.UpdateDevice(appID, r.PathValue("device_id"), s.limits(appID), now, func(d *storage.Device) error {
		if !allowed(d) {
			refused = true
			return errDenied
		}
		d.LastSeen = now
		if e := fn(d); e != nil {
			return e
		}
		return nil
	})
	switch {
	case refused, errors.Is(err, storage.ErrNotFound):
		return d, denied()
	case err != nil:
		return d, storageError(err)
	}
	return d, nil
}

var (
	errDenied     = errors.New("device secret refused")
	errTokenInUse = errors.New("token registered by a device whose secret was not presented")
)

// deviceDenied audits a request without the device's secret. An unknown
// device gets the same answer, so ids cannot be probed.
func (s *Service) deviceDenied(r *http.Request, appID string) *apiError {
	s.audit.Record(storage.AuditEntry{Time: s.now().UTC(), App: appID, Action: ActionDeviceAuthDenied, IP: s.clientIP(r),
		Reason: "device_secret"})
	return s.authFailure(r, errorf(401, "unauthorized", "unknown device or wrong "+DeviceSecretHeader))
}

// authFailure counts a refusal against the client IP's auth-failure
// budget: e while some is left, a 429 after.
func (s *Service) authFailure(r *http.Request, e *apiError) *apiError {
	d := s.cfg.Limits.AuthFailures.Allow(s.clientIP(r))
	if d.Allowed {
		return e
	}
	secs := int((max(d.RetryAfter, time.Second) + time.Second - 1) / time.Second)
	return &apiError{status: 429, code: "rate_limited", descr: "too many failed authentications from this address, retry later",
		retryAfter: secs}
}

func (s *Service) clientGet(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	d, e := s.asDevice(r, appID)
	if e != nil {
		return 0, nil, e
	}
	return http.StatusOK, ViewOf(&d, true), nil
}

func (s *Service) clientDelete(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	if _, e := s.asDevice(r, appID); e != nil {
		return 0, nil, e
	}
	d, err := s.db.DeleteDevice(appID, r.PathValue("device_id"))
	if err != nil {
		return 0, nil, storageError(err)
	}
	s.audit.Record(storage.AuditEntry{Time: s.now().UTC(), App: appID, Action: ActionDeviceDeleted, IP: s.clientIP(r),
		UserID: d.UserID, Reason: deviceReason(&d, "via=client_api")})
	return http.StatusNoContent, nil, nil
}

// clientChallenge hands out a fresh pseudo socket id for the customer's
// auth endpoint to sign; it counts once, until it expires.
func (s *Service) clientChallenge(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	var c storage.Challenge
	_, e := s.updateAsDevice(r, appID, func(d *storage.Device) *apiError {
		c = addChallenge(d, s.now().UTC(), s.cfg.Devices.ChallengeTTL)
		return nil
	})
	if e != nil {
		return 0, nil, e
	}
	return http.StatusOK, map[string]any{"socket_id": c.SocketID, "expires_at": c.ExpiresAt}, nil
}

// signedBody is a signature from the customer's auth endpoints, made as
// for pusher:signin (user_data) or pusher:subscribe (channel_data).
type signedBody struct {
	SocketID    string `json:"socket_id"`
	Auth        string `json:"auth"`
	UserData    string `json:"user_data"`
	ChannelData string `json:"channel_data"`
}

// clientBindUser is PUT …/user {socket_id, auth, user_data}: the signature
// pusher.authenticateUser(socket_id, user) makes, over a challenge of this
// device.
func (s *Service) clientBindUser(r *http.Request, appID string, body []byte) (int, any, *apiError) {
	var in signedBody
	if e := decodeBody(body, &in, false); e != nil {
		return 0, nil, e
	}
	if !protocol.ValidSocketID(in.SocketID) || in.Auth == "" || in.UserData == "" {
		return 0, nil, errorf(400, "bad_request", "socket_id (a challenge), auth and user_data are required")
	}
	// The secret first, so that only the device learns whether a
	// signature is good.
	if _, e := s.asDevice(r, appID); e != nil {
		return 0, nil, e
	}
	if e := s.verifySignature(appID, in.Auth, protocol.UserString(in.SocketID, in.UserData)); e != nil {
		return 0, nil, s.signatureDenied(r, appID, "", e)
	}
	u, err := protocol.ParseUserData(in.UserData)
	if err != nil {
		return 0, nil, errorf(400, "invalid_user_data", "%v", err)
	}
	if e := checkUserID(u.ID); e != nil {
		return 0, nil, e
	}
	var prev string
	d, e := s.updateAsDevice(r, appID, func(d *storage.Device) *apiError {
		if e := useChallenge(d, in.SocketID, s.now().UTC()); e != nil {
			return e
		}
		prev = d.UserID
		switchUser(d, u.ID)
		return nil
	})
	if e != nil {
		return 0, nil, e
	}
	s.auditUserChange(r, &d, prev, "via=client_api")
	return http.StatusOK, ViewOf(&d, true), nil
}

// signatureDenied audits a refused signature.
func (s *Service) signatureDenied(r *http.Request, appID, channel string, e *apiError) *apiError {
	s.audit.Record(storage.AuditEntry{Time: s.now().UTC(), App: appID, Action: ActionDeviceAuthDenied, IP: s.clientIP(r),
		Channel: channel, Reason: "device=" + r.PathValue("device_id") + " " + e.code})
	return s.authFailure(r, e)
}

func (s *Service) clientUnbindUser(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	var prev string
	d, e := s.updateAsDevice(r, appID, func(d *storage.Device) *apiError {
		prev = d.UserID
		switchUser(d, "")
		return nil
	})
	if e != nil {
		return 0, nil, e
	}
	s.auditUserChange(r, &d, prev, "via=client_api")
	return http.StatusOK, ViewOf(&d, true), nil
}

// clientToken is PUT …/token: a refreshed APNs/FCM token or a new web
// subscription, same device id.
func (s *Service) clientToken(r *http.Request, appID string, body []byte) (int, any, *apiError) {
	var in tokenBody
	if e := decodeBody(body, &in, false); e != nil {
		return 0, nil, e
	}
	d, e := s.updateAsDevice(r, appID, func(d *storage.Device) *apiError {
		return in.apply(d, s.cfg.Devices.webSubscription)
	})
	if e != nil {
		return 0, nil, e
	}
	return http.StatusOK, ViewOf(&d, true), nil
}

func (s *Service) clientInterests(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	d, e := s.asDevice(r, appID)
	if e != nil {
		return 0, nil, e
	}
	return http.StatusOK, interestsBody(&d), nil
}

// clientSetInterests is PUT …/interests {interests}: replaces the device's
// own interests (Beams).
func (s *Service) clientSetInterests(r *http.Request, appID string, body []byte) (int, any, *apiError) {
	var in opBody
	if e := decodeBody(body, &in, false); e != nil {
		return 0, nil, e
	}
	in.Op = "set"
	if e := in.check(); e != nil {
		return 0, nil, e
	}
	d, e := s.updateAsDevice(r, appID, func(d *storage.Device) *apiError {
		d.Interests, _ = applyOp(nil, "set", in.Interests)
		return nil
	})
	if e != nil {
		return 0, nil, e
	}
	return http.StatusOK, interestsBody(&d), nil
}

func (s *Service) clientAddInterest(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	return s.clientInterestOp(r, appID, "add")
}

func (s *Service) clientRemoveInterest(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	return s.clientInterestOp(r, appID, "remove")
}

func (s *Service) clientInterestOp(r *http.Request, appID, op string) (int, any, *apiError) {
	name := r.PathValue("interest")
	if e := checkInterest(name); e != nil {
		return 0, nil, e
	}
	_, e := s.updateAsDevice(r, appID, func(d *storage.Device) *apiError {
		d.Interests, _ = applyOp(d.Interests, op, []string{name})
		return nil
	})
	if e != nil {
		return 0, nil, e
	}
	return http.StatusNoContent, nil, nil
}

func (s *Service) clientChannels(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	d, e := s.asDevice(r, appID)
	if e != nil {
		return 0, nil, e
	}
	return http.StatusOK, map[string]any{"channels": channelsOf(&d)}, nil
}

// clientSubscribe is PUT …/channels/{channel}: public channels need
// nothing; private and encrypted ones a bound user and {socket_id, auth}
// as pusher.authorizeChannel makes them; presence ones also channel_data,
// whose user must be the device's bound user. The signature is checked as
// for pusher:subscribe, over a challenge of this device.
func (s *Service) clientSubscribe(r *http.Request, appID string, body []byte) (int, any, *apiError) {
	ch := r.PathValue("channel")
	if e := checkChannel(ch); e != nil {
		return 0, nil, e
	}
	var in signedBody
	if e := decodeBody(body, &in, true); e != nil {
		return 0, nil, e
	}
	kind := protocol.Classify(ch)
	presence := kind.Type == protocol.Presence
	now := s.now().UTC()
	sub := storage.ChannelSub{Channel: ch, AuthorizedAt: now}
	var member string
	if kind.NeedsAuth() {
		if !protocol.ValidSocketID(in.SocketID) || in.Auth == "" {
			return 0, nil, errorf(400, "bad_request", "socket_id (a challenge) and auth are required for private and presence channels")
		}
		if presence && in.ChannelData == "" {
			return 0, nil, errorf(400, "bad_request", "presence channels need channel_data")
		}
		dev, e := s.asDevice(r, appID)
		if e != nil {
			return 0, nil, e
		}
		if dev.UserID == "" {
			return 0, nil, errUserRequired()
		}
		data := ""
		if presence {
			data = in.ChannelData
		}
		if e := s.verifySignature(appID, in.Auth, protocol.ChannelString(in.SocketID, ch, data)); e != nil {
			return 0, nil, s.signatureDenied(r, appID, ch, e)
		}
		if presence {
			m, err := protocol.ParseChannelData(in.ChannelData)
			if err != nil {
				return 0, nil, errorf(400, "invalid_channel_data", "%v", err)
			}
			member = m.UserID
		}
		if ttl := s.cfg.Devices.ChannelAuthTTL; ttl > 0 {
			sub.ExpiresAt = now.Add(ttl)
		}
	}
	d, e := s.updateAsDevice(r, appID, func(d *storage.Device) *apiError {
		if kind.NeedsAuth() {
			if d.UserID == "" {
				return errUserRequired()
			}
			if presence && d.UserID != member {
				return errorf(403, "presence_user_mismatch", "channel_data's user_id must be the device's bound user")
			}
			if e := useChallenge(d, in.SocketID, now); e != nil {
				return e
			}
		}
		d.SetChannel(sub)
		return nil
	})
	if e != nil {
		if e.status == 403 && e.code != "user_required" {
			e = s.signatureDenied(r, appID, ch, e)
		}
		return 0, nil, e
	}
	if kind.NeedsAuth() {
		s.audit.Record(storage.AuditEntry{Time: now, App: appID, Action: ActionChannelSubscribed, IP: s.clientIP(r),
			Channel: ch, UserID: d.UserID, Reason: deviceReason(&d, "via=client_api")})
	}
	return http.StatusOK, channelView(sub), nil
}

// errUserRequired refuses a subscription that needs a signature from a
// device without a bound user: revocations go by user (RevokeChannel), so
// such a subscription could never be revoked.
func errUserRequired() *apiError {
	return errorf(403, "user_required", "bind a user to the device before subscribing to private, encrypted or presence channels")
}

func (s *Service) clientUnsubscribe(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	ch := r.PathValue("channel")
	_, e := s.updateAsDevice(r, appID, func(d *storage.Device) *apiError {
		d.RemoveChannel(ch)
		return nil
	})
	if e != nil {
		return 0, nil, e
	}
	return http.StatusNoContent, nil, nil
}

// deviceRequestAllowed spends one of a device's change requests
// (Limits.DeviceRequests); spent, it is the 429 to answer, with Retry-After
// in whole seconds.
func (s *Service) deviceRequestAllowed(appID, deviceID string) *apiError {
	d := s.cfg.Limits.DeviceRequests.Allow(appID + "\x00" + deviceID)
	if d.Allowed {
		return nil
	}
	secs := int((max(d.RetryAfter, time.Second) + time.Second - 1) / time.Second)
	return &apiError{status: 429, code: "rate_limited", retryAfter: secs,
		descr: "too many requests from this device, retry after " + strconv.Itoa(secs) + "s"}
}
