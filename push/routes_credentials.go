package push

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/sockudo/sockudo/storage"
)

// credentialsBase is where the credential routes live (spec §4.5).
const credentialsBase = "/apps/{app_id}/push/credentials"

// credentialRoutes are the provider-credential routes of the server API,
// signed like the Pusher HTTP API.
func (s *Service) credentialRoutes() []SignedRoute {
	return []SignedRoute{
		{"GET " + credentialsBase, s.listCredentials},
		{"GET " + credentialsBase + "/{provider}", s.listCredentials},
		{"PUT " + credentialsBase + "/{provider}", s.putCredential},
		{"POST " + credentialsBase + "/webpush/generate", s.generateVAPID},
		{"POST " + credentialsBase + "/{provider}/validate", s.validateCredential},
		{"DELETE " + credentialsBase + "/{provider}", s.revokeCredential},
		{"DELETE " + credentialsBase + "/{provider}/versions/{version}", s.revokeCredential},
	}
}

// credentialClientRoutes are the unauthenticated client routes of
// credentials: the VAPID public key browsers subscribe with.
func (s *Service) credentialClientRoutes() []Route {
	return []Route{{"GET /apps/{app_id}/push/client/web-vapid-public-key", http.HandlerFunc(s.vapidPublicKey)}}
}

// AdminHandler serves the credential routes to the admin socket (admin.Server.Push):
// the same paths, bodies and answers as the signed API, trusted because
// the socket is (mode 0600), audited as "admin". The CLI uses it while the
// server runs, so its changes swap provider clients at once. It also
// serves the operator's publish routes (list, status, cancel, deliveries,
// dead letters and their replay, limits), but not publishing itself.
func (s *Service) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	routes := append(s.credentialRoutes(), SignedRoute{"POST " + credentialsBase + "/reseal", s.resealCredentials})
	for _, rt := range s.publishRoutes() {
		if !strings.HasPrefix(rt.Pattern, "POST /apps/{app_id}/push/publishes") {
			routes = append(routes, rt)
		}
	}
	for _, rt := range routes {
		h := rt.Handler
		mux.HandleFunc(rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
			appID := r.PathValue("app_id")
			if _, err := s.db.App(appID); err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					writeCredentialError(w, http.StatusNotFound, "app_not_found", "no app with id "+strconv.Quote(appID))
					return
				}
				s.credentialFail(w, err)
				return
			}
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
			if err != nil {
				writeCredentialError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the body is larger than 1 MiB")
				return
			}
			h(w, r.WithContext(context.WithValue(r.Context(), adminRequest{}, true)), appID, body)
		})
	}
	return mux
}

// adminRequest marks a request that came through the admin socket.
type adminRequest struct{}

// actor is who made r: the app key that signed it, or the admin socket.
func (s *Service) actor(r *http.Request) CredentialActor {
	if r.Context().Value(adminRequest{}) != nil {
		return CredentialActor{Source: "admin"}
	}
	return CredentialActor{Source: "api", Key: r.URL.Query().Get("auth_key"), IP: s.clientIP(r)}
}

// provider reads the {provider} path value; ok is false after answering
// 404.
func provider(w http.ResponseWriter, r *http.Request) (CredentialProvider, bool) {
	p, ok := ParseCredentialProvider(r.PathValue("provider"))
	if !ok {
		e := unknownProvider(r.PathValue("provider"))
		writeCredentialError(w, e.Status, e.Code, e.Description)
	}
	return p, ok
}

func (s *Service) listCredentials(w http.ResponseWriter, r *http.Request, appID string, _ []byte) {
	var p CredentialProvider
	if r.PathValue("provider") != "" {
		var ok bool
		if p, ok = provider(w, r); !ok {
			return
		}
	}
	list, err := s.creds.List(appID, p)
	if err != nil {
		s.credentialFail(w, err)
		return
	}
	if p != "" {
		replyJSON(w, http.StatusOK, list[0])
		return
	}
	replyJSON(w, http.StatusOK, struct {
		Credentials []ProviderCredentials `json:"credentials"`
	}{list})
}

func (s *Service) putCredential(w http.ResponseWriter, r *http.Request, appID string, body []byte) {
	p, ok := provider(w, r)
	if !ok {
		return
	}
	v, err := s.creds.Put(appID, p, body, s.actor(r))
	if err != nil {
		s.credentialFail(w, err)
		return
	}
	replyJSON(w, http.StatusCreated, v)
}

func (s *Service) generateVAPID(w http.ResponseWriter, r *http.Request, appID string, body []byte) {
	var req struct {
		Subject string `json:"subject"`
	}
	if len(body) > maxCredentialBody {
		writeCredentialError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the body is too large")
		return
	}
	if err := decodeStrict(body, &req); err != nil {
		e := invalidBody(err)
		writeCredentialError(w, e.Status, e.Code, `want {"subject":"mailto:…"}: `+err.Error())
		return
	}
	v, err := s.creds.GenerateVAPID(appID, req.Subject, s.actor(r))
	if err != nil {
		s.credentialFail(w, err)
		return
	}
	replyJSON(w, http.StatusCreated, v)
}

func (s *Service) validateCredential(w http.ResponseWriter, r *http.Request, appID string, body []byte) {
	p, ok := provider(w, r)
	if !ok {
		return
	}
	var req struct {
		// Version is the version to check; 0 means the current one.
		Version uint64 `json:"version"`
		// Live asks the provider where that is safe (FCM: an access
		// token).
		Live bool `json:"live"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			e := invalidBody(err)
			writeCredentialError(w, e.Status, e.Code, `want {"version":n,"live":bool} or no body: `+err.Error())
			return
		}
	}
	res, err := s.creds.Validate(r.Context(), appID, p, req.Version, req.Live, s.actor(r))
	if err != nil {
		s.credentialFail(w, err)
		return
	}
	replyJSON(w, http.StatusOK, res)
}

func (s *Service) revokeCredential(w http.ResponseWriter, r *http.Request, appID string, _ []byte) {
	p, ok := provider(w, r)
	if !ok {
		return
	}
	var v uint64
	if raw := r.PathValue("version"); raw != "" {
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil || n == 0 {
			writeCredentialError(w, http.StatusBadRequest, "invalid_version", "the version must be a positive integer")
			return
		}
		v = n
	}
	res, err := s.creds.Revoke(appID, p, v, s.actor(r))
	if err != nil {
		s.credentialFail(w, err)
		return
	}
	replyJSON(w, http.StatusOK, res)
}

// resealCredentials (admin socket only) reseals the app's credentials with
// the current encryption key (Credentials.Reseal).
func (s *Service) resealCredentials(w http.ResponseWriter, r *http.Request, appID string, _ []byte) {
	res, err := s.creds.Reseal(appID, s.actor(r))
	if err != nil {
		s.credentialFail(w, err)
		return
	}
	replyJSON(w, http.StatusOK, res)
}

func (s *Service) vapidPublicKey(w http.ResponseWriter, r *http.Request) {
	appID := r.PathValue("app_id")
	if _, _, ok := s.apps.AppCredentials(appID); !ok {
		writeCredentialError(w, http.StatusNotFound, "app_not_found", "no such app")
		return
	}
	kid, pub, err := s.creds.VAPIDPublicKey(appID)
	if errors.Is(err, ErrNoCredential) {
		writeCredentialError(w, http.StatusNotFound, "not_found", "this app has no Web Push (VAPID) key")
		return
	}
	if err != nil {
		s.credentialFail(w, err)
		return
	}
	// The public key is public: any web page of the app may read it. It
	// changes on rotation, so it is not cached for long.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cache-Control", "no-cache")
	replyJSON(w, http.StatusOK, struct {
		VAPIDPublicKey string `json:"vapid_public_key"`
		KeyID          string `json:"key_id"`
	}{pub, kid})
}

// credentialFail answers a failed credential operation (spec §4
// conventions: {"error":code,"description":…}).
func (s *Service) credentialFail(w http.ResponseWriter, err error) {
	var ce *CredentialError
	switch {
	case errors.As(err, &ce):
		writeCredentialError(w, ce.Status, ce.Code, ce.Description)
	case errors.Is(err, ErrCredentialKeyMissing):
		writeCredentialError(w, http.StatusServiceUnavailable, "encryption_key_not_configured", ErrCredentialKeyMissing.Error())
	case errors.Is(err, ErrCredentialRevoked):
		writeCredentialError(w, http.StatusConflict, "revoked", "that credential version is revoked")
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, ErrNoCredential):
		writeCredentialError(w, http.StatusNotFound, "not_found", "no such credential version")
	default:
		// Storage and sealing errors name apps, providers and versions,
		// never key material.
		s.log.Error("push credential operation failed", "err", err)
		writeCredentialError(w, http.StatusInternalServerError, "internal_error", "the credential could not be stored or read")
	}
}

// writeCredentialError writes the push API's error shape (replyError).
func writeCredentialError(w http.ResponseWriter, status int, code, description string) {
	replyError(w, &apiError{status: status, code: code, descr: description})
}
