package push

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"

	"github.com/sockudo/sockudo/storage"
)

// The Pusher Beams face (issue 13): the routes Beams' SDKs call, on the
// same devices, publish pipeline, limits and audit as the native API. The
// Beams instance id is the app id, and only an app with a Beams secret key
// (Apps.AppBeamsKeys) answers on them; the others get 404, as an unknown
// instance does. Bodies and answers follow Beams' SDKs: errors are
// {"error","description"} (what the Node server SDK and the web SDK
// parse).
const (
	beamsPublishAPI = "/publish_api/v1/instances/{instance_id}"
	beamsUserAPI    = "/user_api/v1/instances/{instance_id}"
	// beamsCustomerAPI is the same user route as the Go, PHP, Python and
	// Ruby server SDKs and Beams' docs name it.
	beamsCustomerAPI = "/customer_api/v1/instances/{instance_id}"
	beamsDeviceAPI   = "/device_api/v1/instances/{instance_id}"
)

// Audit actions of the Beams face.
const (
	// ActionBeamsAuthDenied is a wrong or missing Beams secret key or user
	// token.
	ActionBeamsAuthDenied = "push_beams_auth_denied"
)

// beamsRequest marks a publish that came through the Beams publish API.
type beamsRequest struct{}

// beamsHandler is the work of a Beams server route, after its key was
// checked and its body read.
type beamsHandler func(w http.ResponseWriter, r *http.Request, appID string, body []byte) (int, any, *apiError)

// beamsRoutes are the Beams publish, user and device API routes; main
// mounts them with server.Handle (they carry their own authentication).
func (s *Service) beamsRoutes() []Route {
	return append([]Route{
		{"POST " + beamsPublishAPI + "/publishes", s.beamsServer(MaxPublishBody, s.beamsPublish(ToInterests))},
		{"POST " + beamsPublishAPI + "/publishes/interests", s.beamsServer(MaxPublishBody, s.beamsPublish(ToInterests))},
		{"POST " + beamsPublishAPI + "/publishes/users", s.beamsServer(MaxPublishBody, s.beamsPublish(ToUsers))},
		{"DELETE " + beamsUserAPI + "/users/{user_id}", s.beamsServer(clientBodyLimit, s.beamsDeleteUser)},
		{"DELETE " + beamsCustomerAPI + "/users/{user_id}", s.beamsServer(clientBodyLimit, s.beamsDeleteUser)},
	}, s.beamsDeviceRoutes()...)
}

// beamsServer adapts fn to a route of Beams' server API: an app with a
// Beams key, the key as "Authorization: Bearer <key>", then a body of at
// most limit bytes.
func (s *Service) beamsServer(limit int64, fn beamsHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		appID := r.PathValue("instance_id")
		if e := s.beamsAuth(r, appID); e != nil {
			replyError(w, e)
			return
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

// beamsAuth checks the request's bearer key against the app's Beams keys
// (the current one, and the previous one during its grace period). A
// wrong or missing key is audited and counts against the client IP's
// auth-failure budget (Limits.AuthFailures).
func (s *Service) beamsAuth(r *http.Request, appID string) *apiError {
	keys := s.apps.AppBeamsKeys(appID)
	if len(keys) == 0 {
		return errNoInstance()
	}
	presented, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && keyMatches(keys, presented) {
		return nil
	}
	return s.beamsDenied(r, appID, "beams_secret_key",
		errorf(401, "Unauthorized", "missing or wrong Beams secret key (Authorization: Bearer <secret key>)"))
}

// errNoInstance answers for an app that is unknown, disabled or has no
// Beams key: the same answer, so instances cannot be told apart.
func errNoInstance() *apiError {
	return errorf(404, "Not Found", "no Beams instance with this id")
}

// beamsDenied audits a refused Beams credential and counts it.
func (s *Service) beamsDenied(r *http.Request, appID, reason string, e *apiError) *apiError {
	s.audit.Record(storage.AuditEntry{Time: s.now().UTC(), App: appID, Action: ActionBeamsAuthDenied, IP: s.clientIP(r),
		Reason: reason})
	return s.authFailure(r, e)
}

// keyMatches compares presented with each key in constant time (over
// their SHA-256, so the length of a key does not leak either).
func keyMatches(keys []string, presented string) bool {
	if presented == "" {
		return false
	}
	got := sha256.Sum256([]byte(presented))
	match := 0
	for _, k := range keys {
		want := sha256.Sum256([]byte(k))
		match |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	return match == 1
}

// beamsPublish is POST …/publishes[/interests|/users]: the body Beams
// documents (interests or users, and apns, fcm and web blocks passed to
// the providers as given), through the same pipeline as the native API
// (validated, rate limited, persisted, audited, sent and retried). It
// answers 200 {"publishId"} as Beams does; the id is the native one, so
// GET /apps/{id}/push/publishes/{publishId} shows its status.
func (s *Service) beamsPublish(kind RecipientKind) beamsHandler {
	return func(w http.ResponseWriter, r *http.Request, appID string, body []byte) (int, any, *apiError) {
		r = r.WithContext(context.WithValue(r.Context(), beamsRequest{}, true))
		status, v, e := s.publish(w, r, appID, string(kind), body)
		if e != nil {
			return 0, nil, e
		}
		if m, ok := v.(map[string]any); ok {
			if id, ok := m["publishId"]; ok {
				return http.StatusOK, map[string]any{"publishId": id}, nil
			}
		}
		return status, v, nil
	}
}

// beamsDeleteUser is DELETE /user_api/v1/instances/{id}/users/{user_id}
// (the Node SDK) and /customer_api/v1/… (the other server SDKs):
// the user's devices are deleted (Beams' deleteUser). It answers 200
// without a body, as Beams does.
func (s *Service) beamsDeleteUser(_ http.ResponseWriter, r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	user := r.PathValue("user_id")
	if e := checkUserID(user); e != nil {
		return 0, nil, e
	}
	gone, err := s.db.DeleteUserDevices(appID, user)
	if err != nil {
		return 0, nil, storageError(err)
	}
	s.audit.Record(storage.AuditEntry{Time: s.now().UTC(), App: appID, IP: s.clientIP(r), Action: ActionUserDevicesDeleted,
		UserID: user, Reason: "via=beams devices=" + strconv.Itoa(len(gone))})
	return http.StatusOK, nil, nil
}
