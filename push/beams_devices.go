package push

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// Beams' device API, as its device SDKs call it (the web SDK's
// src/push-notifications.js is the reference): registration, the VAPID
// key, interests, metadata, the user binding with a Beams user token, and
// deletion. Beams' device API has no device secret: the device id it hands
// out is the device's credential. A device registered here therefore gets
// a random id (122 bits, Beams' "web-<uuid>" form) whose hash is stored as
// its secret, so these routes reach only devices registered through them,
// never one registered through the native API whose id is not a secret.

// beamsDeviceFunc is the work of a device route after the instance, the
// device (when the path names one) and the body were checked.
type beamsDeviceFunc func(w http.ResponseWriter, r *http.Request, appID string, body []byte) (int, any, *apiError)

// beamsDeviceRoutes are the routes of Beams' device API.
func (s *Service) beamsDeviceRoutes() []Route {
	const p = beamsDeviceAPI + "/devices/{platform}"
	const d = p + "/{device_id}"
	const read, write = false, true
	return []Route{
		{"OPTIONS " + beamsDeviceAPI + "/{rest...}", http.HandlerFunc(beamsPreflight)},
		{"GET " + beamsDeviceAPI + "/web-vapid-public-key", s.beamsDevice(read, clientBodyLimit, s.beamsVAPIDKey)},
		{"POST " + p, s.beamsDevice(write, clientBodyLimit, s.beamsRegister)},
		{"GET " + d, s.beamsDevice(read, clientBodyLimit, s.beamsGetDevice)},
		{"DELETE " + d, s.beamsDevice(read, clientBodyLimit, s.beamsDeleteDevice)},
		{"GET " + d + "/interests", s.beamsDevice(read, clientBodyLimit, s.beamsInterests)},
		{"PUT " + d + "/interests", s.beamsDevice(write, interestsBodyLimit, s.beamsSetInterests)},
		{"POST " + d + "/interests/{interest}", s.beamsDevice(write, clientBodyLimit, s.beamsInterestOp("add"))},
		{"DELETE " + d + "/interests/{interest}", s.beamsDevice(write, clientBodyLimit, s.beamsInterestOp("remove"))},
		{"PUT " + d + "/metadata", s.beamsDevice(write, clientBodyLimit, s.beamsMetadata)},
		{"PUT " + d + "/user", s.beamsDevice(write, clientBodyLimit, s.beamsBindUser)},
	}
}

// beamsCORS lets any web page call the device API, as Beams does: the web
// SDK calls it from the customer's pages, without cookies
// (credentials 'same-origin'), so "*" gives nothing away.
func beamsCORS(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Retry-After")
}

// beamsPreflight answers the browser's CORS preflight of a device route.
func beamsPreflight(w http.ResponseWriter, _ *http.Request) {
	beamsCORS(w)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// beamsDevice adapts fn to a device route: an app with a Beams key (the
// device API does not take the key, but an app without one does not speak
// Beams), a known platform, the device of the path when it names one
// (registered through these routes, of that platform), its request budget
// when mutating (Limits.DeviceRequests), then a body of at most limit.
func (s *Service) beamsDevice(mutating bool, limit int64, fn beamsDeviceFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		beamsCORS(w)
		appID := r.PathValue("instance_id")
		if len(s.apps.AppBeamsKeys(appID)) == 0 {
			replyError(w, errNoInstance())
			return
		}
		if p := r.PathValue("platform"); p != "" && !beamsPlatform(p) {
			replyError(w, errorf(404, "Not Found", "platform is web, apns or fcm"))
			return
		}
		if r.PathValue("device_id") != "" {
			if _, e := s.asBeamsDevice(r, appID); e != nil {
				replyError(w, e)
				return
			}
			if mutating {
				if e := s.deviceRequestAllowed(appID, r.PathValue("device_id")); e != nil {
					replyError(w, e)
					return
				}
			}
		}
		body, e := readBody(w, r, limit)
		if e != nil {
			replyError(w, e)
			return
		}
		status, v, e := fn(w, r, appID, body)
		reply(w, status, v, e)
	})
}

func beamsPlatform(p string) bool {
	return p == storage.PlatformWeb || p == storage.PlatformAPNs || p == storage.PlatformFCM
}

// isBeamsDevice reports whether d was registered through the Beams device
// API (its id is its secret) for platform.
func isBeamsDevice(d *storage.Device, platform string) bool {
	return d.Platform == platform && secretMatches(d, d.ID)
}

// asBeamsDevice reads the device of the path. A device that is unknown,
// of another platform or not registered through these routes gets the
// same 404, counted as an authentication failure so ids cannot be probed.
func (s *Service) asBeamsDevice(r *http.Request, appID string) (storage.Device, *apiError) {
	d, err := s.db.Device(appID, r.PathValue("device_id"))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return d, storageError(err)
	}
	if err != nil || !isBeamsDevice(&d, r.PathValue("platform")) {
		return d, s.beamsDeviceDenied(r, appID)
	}
	return d, nil
}

func (s *Service) beamsDeviceDenied(r *http.Request, appID string) *apiError {
	return s.beamsDenied(r, appID, "beams_device", errorf(404, "Not Found", "device not found"))
}

// updateBeamsDevice changes the device of the path with fn, checking in
// the same transaction that it is still the Beams device the path names,
// and records that it was seen.
func (s *Service) updateBeamsDevice(r *http.Request, appID string, fn func(*storage.Device) *apiError) (storage.Device, *apiError) {
	platform := r.PathValue("platform")
	return s.updateDeviceIf(r, appID, func(d *storage.Device) bool { return isBeamsDevice(d, platform) },
		func() *apiError { return s.beamsDeviceDenied(r, appID) }, fn)
}

// beamsVAPIDKey is GET …/web-vapid-public-key: {"vapidPublicKey"}, the
// app's current Web Push key.
func (s *Service) beamsVAPIDKey(_ http.ResponseWriter, _ *http.Request, appID string, _ []byte) (int, any, *apiError) {
	_, pub, err := s.creds.VAPIDPublicKey(appID)
	if errors.Is(err, ErrNoCredential) {
		return 0, nil, errorf(404, "Not Found", "this instance has no Web Push (VAPID) key: generate one with sockudo push credentials")
	}
	if err != nil {
		s.log.Error("push: reading the VAPID key failed", "app_id", appID, "err", err)
		return 0, nil, errorf(500, "internal_error", "reading the VAPID key failed")
	}
	return http.StatusOK, map[string]string{"vapidPublicKey": pub}, nil
}

// beamsRegisterBody is POST …/devices/{platform}: web's token is the
// browser's PushSubscription as JSON in base64 (btoa); apns and fcm send
// the provider token, apns its bundle id.
type beamsRegisterBody struct {
	Token            string          `json:"token"`
	BundleIdentifier string          `json:"bundleIdentifier"`
	Metadata         json.RawMessage `json:"metadata"`
}

// beamsRegister registers a device and answers {"id", "initialInterestSet"}.
// A token already registered through these routes answers that device's
// id (the web SDK registers again after clearing its state); a token held
// by a native device is refused.
func (s *Service) beamsRegister(w http.ResponseWriter, r *http.Request, appID string, body []byte) (int, any, *apiError) {
	d := allowQuota(s.cfg.Limits.Registrations, appID+"\x00"+s.clientIP(r), s.apps.AppPushLimits(appID).RegistrationsPerMinute)
	if !d.Allowed {
		s.audit.Record(storage.AuditEntry{Time: s.now().UTC(), App: appID, Action: "rate_limited", IP: s.clientIP(r),
			Reason: "push_registrations"})
		secs := int((max(d.RetryAfter, time.Second) + time.Second - 1) / time.Second)
		return 0, nil, &apiError{status: 429, code: "rate_limited", retryAfter: secs,
			descr: "too many registrations from this address, retry after " + strconv.Itoa(secs) + "s"}
	}
	var in beamsRegisterBody
	if e := decodeBody(body, &in, false); e != nil {
		return 0, nil, e
	}
	platform := r.PathValue("platform")
	var tb tokenBody
	switch platform {
	case storage.PlatformWeb:
		sub, e := decodeWebToken(in.Token)
		if e != nil {
			return 0, nil, e
		}
		tb.Subscription = sub
		if c, err := s.db.CurrentPushCredential(appID, string(ProviderWebPush)); err == nil && c.Version <= 1<<31 {
			tb.VAPIDKeyVersion = int(c.Version)
		}
	case storage.PlatformAPNs:
		tb.Token, tb.Topic = in.Token, in.BundleIdentifier
	default:
		tb.Token = in.Token
	}
	now := s.now().UTC()
	dev := storage.Device{ID: newBeamsDeviceID(platform), App: appID, Platform: platform, LastSeen: now}
	if e := tb.apply(&dev, s.cfg.Devices.webSubscription); e != nil {
		return 0, nil, e
	}
	var e *apiError
	if dev.Metadata, e = checkMetadata(in.Metadata); e != nil {
		return 0, nil, e
	}
	dev.SecretHash = storage.TokenHash(dev.ID)
	saved, _, err := s.db.PutDevice(dev, s.limits(appID), now, false)
	if errors.Is(err, storage.ErrTokenInUse) {
		old, ferr := s.db.DeviceByToken(appID, platform, storage.TokenHash(dev.Token))
		if ferr != nil || !isBeamsDevice(&old, platform) {
			s.audit.Record(storage.AuditEntry{Time: now, App: appID, Action: ActionDeviceAuthDenied, IP: s.clientIP(r),
				Reason: "platform=" + platform + " token_in_use via=beams"})
			return 0, nil, errorf(409, "Conflict", "another device of this instance has this token")
		}
		saved, err = old, nil
	}
	if err != nil {
		return 0, nil, storageError(err)
	}
	s.audit.Record(storage.AuditEntry{Time: now, App: appID, Action: ActionDeviceRegistered, IP: s.clientIP(r),
		Reason: deviceReason(&saved, "via=beams")})
	return http.StatusOK, map[string]any{"id": saved.ID, "initialInterestSet": nonNil(saved.Interests)}, nil
}

// decodeWebToken reads the web SDK's token: btoa(JSON.stringify(sub)).
func decodeWebToken(token string) (*subscriptionBody, *apiError) {
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(token); err == nil {
			break
		}
	}
	var sub subscriptionBody
	if token == "" || len(token) > maxTokenLength || err != nil || json.Unmarshal(raw, &sub) != nil || sub.Endpoint == "" {
		return nil, errorf(400, "invalid_token", "a web token is the browser's PushSubscription as JSON, in base64")
	}
	return &sub, nil
}

// newBeamsDeviceID returns "<platform>-<uuid v4>", Beams' form.
func newBeamsDeviceID(platform string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return platform + "-" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// beamsGetDevice is GET …/devices/{platform}/{id}: {id, userId, metadata}.
func (s *Service) beamsGetDevice(_ http.ResponseWriter, r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	d, e := s.asBeamsDevice(r, appID)
	if e != nil {
		return 0, nil, e
	}
	v := map[string]any{"id": d.ID, "userId": d.UserID}
	if d.Metadata != nil {
		v["metadata"] = d.Metadata
	}
	return http.StatusOK, v, nil
}

func (s *Service) beamsDeleteDevice(_ http.ResponseWriter, r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	d, err := s.db.DeleteDevice(appID, r.PathValue("device_id"))
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil, s.beamsDeviceDenied(r, appID)
	}
	if err != nil {
		return 0, nil, storageError(err)
	}
	s.audit.Record(storage.AuditEntry{Time: s.now().UTC(), App: appID, Action: ActionDeviceDeleted, IP: s.clientIP(r),
		UserID: d.UserID, Reason: deviceReason(&d, "via=beams")})
	return http.StatusOK, nil, nil
}

// beamsInterests is GET …/interests?limit=&cursor=: {"interests": […],
// "responseMetadata": {"nextCursor"}} (the web SDK's getDeviceInterests);
// the cursor is an offset.
func (s *Service) beamsInterests(_ http.ResponseWriter, r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	d, e := s.asBeamsDevice(r, appID)
	if e != nil {
		return 0, nil, e
	}
	q := r.URL.Query()
	limit, e := intParam(q.Get("limit"), 100, 1, maxPageLimit)
	if e != nil {
		return 0, nil, e
	}
	from := 0
	if c := q.Get("cursor"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 {
			return 0, nil, errorf(400, "bad_request", "cursor is the nextCursor of a previous page")
		}
		from = n
	}
	all := nonNil(d.Interests)
	from = min(from, len(all))
	to := min(from+limit, len(all))
	meta := map[string]any{}
	if to < len(all) {
		meta["nextCursor"] = strconv.Itoa(to)
	}
	return http.StatusOK, map[string]any{"interests": all[from:to], "responseMetadata": meta}, nil
}

// beamsSetInterests is PUT …/interests {"interests": […]}: replaces the
// device's interests (at most the app's interest limit).
func (s *Service) beamsSetInterests(_ http.ResponseWriter, r *http.Request, appID string, body []byte) (int, any, *apiError) {
	var in struct {
		Interests []string `json:"interests"`
	}
	if e := decodeBody(body, &in, false); e != nil {
		return 0, nil, e
	}
	if in.Interests == nil {
		return 0, nil, errorf(400, "bad_request", "interests is required")
	}
	if e := checkInterests(in.Interests); e != nil {
		return 0, nil, e
	}
	d, e := s.updateBeamsDevice(r, appID, func(d *storage.Device) *apiError {
		d.Interests, _ = applyOp(nil, "set", in.Interests)
		return nil
	})
	if e != nil {
		return 0, nil, e
	}
	return http.StatusOK, map[string]any{"interests": nonNil(d.Interests)}, nil
}

// beamsInterestOp is POST (add) and DELETE (remove) …/interests/{interest}.
func (s *Service) beamsInterestOp(op string) beamsDeviceFunc {
	return func(_ http.ResponseWriter, r *http.Request, appID string, _ []byte) (int, any, *apiError) {
		name := r.PathValue("interest")
		if e := checkInterest(name); e != nil {
			return 0, nil, e
		}
		_, e := s.updateBeamsDevice(r, appID, func(d *storage.Device) *apiError {
			d.Interests, _ = applyOp(d.Interests, op, []string{name})
			return nil
		})
		if e != nil {
			return 0, nil, e
		}
		return http.StatusOK, nil, nil
	}
}

// beamsMetadata is PUT …/metadata: the body is the metadata object
// ({"sdkVersion"} from the web SDK).
func (s *Service) beamsMetadata(_ http.ResponseWriter, r *http.Request, appID string, body []byte) (int, any, *apiError) {
	meta, e := checkMetadata(body)
	if e != nil || meta == nil {
		return 0, nil, errorf(400, "bad_request", "the metadata is a JSON object of at most %d bytes", maxMetadataLength)
	}
	if _, e := s.updateBeamsDevice(r, appID, func(d *storage.Device) *apiError {
		d.Metadata = meta
		return nil
	}); e != nil {
		return 0, nil, e
	}
	return http.StatusOK, nil, nil
}

// beamsBindUser is PUT …/user with "Authorization: Bearer <Beams user
// token>": the token's subject becomes the device's user (Beams'
// authenticated users), as a signed binding does on the native API.
func (s *Service) beamsBindUser(_ http.ResponseWriter, r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	user, e := verifyBeamsToken(token, appID, s.apps.AppBeamsKeys(appID), s.now())
	if e != nil {
		return 0, nil, s.beamsDenied(r, appID, "beams_user_token device="+r.PathValue("device_id"), e)
	}
	var prev string
	d, e := s.updateBeamsDevice(r, appID, func(d *storage.Device) *apiError {
		prev = d.UserID
		switchUser(d, user)
		return nil
	})
	if e != nil {
		return 0, nil, e
	}
	s.auditUserChange(r, &d, prev, "via=beams_token")
	return http.StatusOK, nil, nil
}
