package push

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/oauth2/google"

	"github.com/sockudo/sockudo/push/internal/jws"
)

// CredentialProvider names a push provider in the credential API.
type CredentialProvider string

// The providers a credential is for.
const (
	ProviderAPNs    CredentialProvider = "apns"
	ProviderFCM     CredentialProvider = "fcm"
	ProviderWebPush CredentialProvider = "webpush"
)

// CredentialProviders lists the providers in the order the API shows them.
var CredentialProviders = []CredentialProvider{ProviderAPNs, ProviderFCM, ProviderWebPush}

// ParseCredentialProvider checks a provider name from a path or a flag.
func ParseCredentialProvider(s string) (CredentialProvider, bool) {
	switch p := CredentialProvider(s); p {
	case ProviderAPNs, ProviderFCM, ProviderWebPush:
		return p, true
	}
	return "", false
}

// Bounds of a credential's fields. A real .p8 is about 250 bytes and a
// service-account JSON about 2.4 KiB; the bounds leave room and stop a
// tenant from storing megabytes.
const (
	maxCredentialBody  = 128 << 10
	maxP8              = 8 << 10
	maxServiceAccount  = 64 << 10
	maxSubject         = 512
	maxTopic           = 255
	maxVAPIDPrivateKey = 128
)

// CredentialError is a refused credential operation: the HTTP status, a
// stable code and a description for people. It never quotes a secret.
type CredentialError struct {
	Status      int
	Code        string
	Description string
}

func (e *CredentialError) Error() string { return "push: " + e.Description }

func badCredential(format string, args ...any) *CredentialError {
	return &CredentialError{Status: http.StatusBadRequest, Code: "invalid_credential", Description: fmt.Sprintf(format, args...)}
}

// apnsCredential is an APNs token-auth key (spec §2.1, §4.5).
type apnsCredential struct {
	TeamID string `json:"team_id"`
	KeyID  string `json:"key_id"`
	// Topic is the default apns-topic (the bundle id); a device's own
	// bundle id wins.
	Topic string `json:"topic,omitempty"`
	// Environment is "production", "sandbox" or "both" (the default): the
	// APNs environments the key serves. A .p8 key works in both.
	Environment string `json:"environment,omitempty"`
	// P8 is the PKCS#8 PEM of the EC P-256 key: the secret.
	P8 string `json:"p8"`
}

// fcmCredential is a Google service account (spec §2.2).
type fcmCredential struct {
	ServiceAccount json.RawMessage `json:"service_account"`
}

// webPushCredential is a VAPID key pair and subject (spec §2.3).
type webPushCredential struct {
	Subject string `json:"subject"`
	// PublicKey is optional on input: when given it must match the
	// private key.
	PublicKey string `json:"public_key,omitempty"`
	// PrivateKey is the 32-byte P-256 scalar in base64url: the secret.
	PrivateKey string `json:"private_key"`
}

// parsedCredential is a checked credential: the plaintext to seal and what
// may be shown of it.
type parsedCredential struct {
	plain       []byte
	public      map[string]string
	fingerprint string
}

var appleID = regexp.MustCompile(`^[A-Z0-9]{10}$`)

// decodeStrict decodes one JSON object into v, refusing unknown fields
// (a typo such as "p8_key" must not pass as a credential without a key).
func decodeStrict(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// parseCredential checks a PUT body for provider p and returns what to
// store. Errors are *CredentialError with status 400; none quotes the
// secret.
func parseCredential(p CredentialProvider, body []byte) (parsedCredential, error) {
	if len(body) > maxCredentialBody {
		return parsedCredential{}, &CredentialError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Description: "credential body larger than " + strconv.Itoa(maxCredentialBody) + " bytes"}
	}
	switch p {
	case ProviderAPNs:
		var c apnsCredential
		if err := decodeStrict(body, &c); err != nil {
			return parsedCredential{}, invalidBody(err)
		}
		return parseAPNs(c)
	case ProviderFCM:
		var c fcmCredential
		if err := decodeStrict(body, &c); err != nil {
			return parsedCredential{}, invalidBody(err)
		}
		return parseFCM(c)
	case ProviderWebPush:
		var c webPushCredential
		if err := decodeStrict(body, &c); err != nil {
			return parsedCredential{}, invalidBody(err)
		}
		return parseWebPush(c)
	}
	return parsedCredential{}, unknownProvider(string(p))
}

func invalidBody(err error) *CredentialError {
	// json's messages name fields and types, never values.
	return &CredentialError{Status: http.StatusBadRequest, Code: "invalid_body",
		Description: "the body must be one JSON object with the provider's fields: " + err.Error()}
}

func unknownProvider(p string) *CredentialError {
	return &CredentialError{Status: http.StatusNotFound, Code: "unknown_provider",
		Description: fmt.Sprintf("unknown push provider %q: use apns, fcm or webpush", p)}
}

func parseAPNs(c apnsCredential) (parsedCredential, error) {
	var errs []string
	if !appleID.MatchString(c.TeamID) {
		errs = append(errs, "team_id must be the 10-character Apple Team ID (A-Z, 0-9)")
	}
	if !appleID.MatchString(c.KeyID) {
		errs = append(errs, "key_id must be the 10-character Key ID of the .p8 key (A-Z, 0-9)")
	}
	if len(c.Topic) > maxTopic || strings.ContainsAny(c.Topic, " \t\r\n/") {
		errs = append(errs, "topic must be a bundle id of at most 255 characters")
	}
	switch c.Environment {
	case "":
		c.Environment = "both"
	case "production", "sandbox", "both":
	default:
		errs = append(errs, `environment must be "production", "sandbox" or "both"`)
	}
	var fp string
	switch {
	case c.P8 == "":
		errs = append(errs, "p8 is required: the content of the AuthKey_<key id>.p8 file")
	case len(c.P8) > maxP8:
		errs = append(errs, "p8 is larger than "+strconv.Itoa(maxP8)+" bytes")
	default:
		key, err := jws.ParseP8([]byte(c.P8))
		if err != nil {
			errs = append(errs, "p8 is not a PKCS#8 PEM EC P-256 private key (the AuthKey_<key id>.p8 file)")
			break
		}
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			errs = append(errs, "p8: unusable public key")
			break
		}
		fp = fingerprint(der)
	}
	if len(errs) > 0 {
		return parsedCredential{}, badCredential("apns: %s", strings.Join(errs, "; "))
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return parsedCredential{}, err
	}
	pub := map[string]string{"team_id": c.TeamID, "key_id": c.KeyID, "environment": c.Environment}
	if c.Topic != "" {
		pub["topic"] = c.Topic
	}
	return parsedCredential{plain: plain, public: pub, fingerprint: fp}, nil
}

// googleTokenURLs are the token endpoints a service account may name:
// Google's documented ones ("" means google.Endpoint.TokenURL). Any other
// token_uri would make this server post a signed assertion wherever a
// tenant says (an SSRF vector, and through validate's answer an oracle),
// so no setting lifts this rule: an operator who needs another endpoint (a
// test, an FCM emulator) sets Config.FCMTokenURL, which replaces the
// token_uri of every credential.
var googleTokenURLs = map[string]bool{
	"": true, "https://oauth2.googleapis.com/token": true, "https://accounts.google.com/o/oauth2/token": true,
	"https://www.googleapis.com/oauth2/v4/token": true,
}

const tokenURIRule = "token_uri must be Google's (https://oauth2.googleapis.com/token)"

// FCMTokenURL is the token endpoint a service account's access tokens are
// fetched from under cfg: cfg.FCMTokenURL when the operator set it (it
// replaces every credential's token_uri), else the JSON's token_uri, which
// must be one of Google's (stored credentials are checked again here, so
// one stored before this rule held sends nowhere else). override reports
// the operator's choice: without it the fetch must go through an HTTP
// client that refuses private addresses and redirects.
func FCMTokenURL(cfg Config, serviceAccount []byte) (tokenURL string, override bool, err error) {
	if cfg.FCMTokenURL != "" {
		return cfg.FCMTokenURL, true, nil
	}
	var sa struct {
		TokenURI string `json:"token_uri"`
	}
	if err := json.Unmarshal(serviceAccount, &sa); err != nil {
		return "", false, errors.New("fcm: service account is not a JSON object")
	}
	if !googleTokenURLs[sa.TokenURI] {
		return "", false, errors.New("fcm: " + tokenURIRule + "; set PUSH_FCM_TOKEN_URL for another endpoint")
	}
	if sa.TokenURI == "" {
		return google.Endpoint.TokenURL, false, nil
	}
	return sa.TokenURI, false, nil
}

func parseFCM(c fcmCredential) (parsedCredential, error) {
	raw := []byte(c.ServiceAccount)
	// The JSON may come as an object or as a string holding it (the file
	// pasted as text).
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = []byte(s)
	}
	switch {
	case len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null":
		return parsedCredential{}, badCredential("fcm: service_account is required: the service-account JSON " +
			"from the Firebase console (Project settings, Service accounts, Generate new private key)")
	case len(raw) > maxServiceAccount:
		return parsedCredential{}, badCredential("fcm: service_account is larger than %d bytes", maxServiceAccount)
	}
	var sa struct {
		Type         string `json:"type"`
		ProjectID    string `json:"project_id"`
		ClientEmail  string `json:"client_email"`
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
		TokenURI     string `json:"token_uri"`
	}
	if err := json.Unmarshal(raw, &sa); err != nil {
		return parsedCredential{}, badCredential("fcm: service_account is not a JSON object")
	}
	var errs []string
	if sa.Type != "service_account" {
		errs = append(errs, `type must be "service_account"`)
	}
	if sa.ProjectID == "" || strings.ContainsAny(sa.ProjectID, "/?#% ") {
		errs = append(errs, "project_id is missing or invalid")
	}
	if !strings.Contains(sa.ClientEmail, "@") {
		errs = append(errs, "client_email is missing")
	}
	if !googleTokenURLs[sa.TokenURI] {
		errs = append(errs, tokenURIRule)
	}
	var fp string
	if sa.PrivateKey == "" {
		errs = append(errs, "private_key is missing")
	} else if pub, err := rsaPublicKey(sa.PrivateKey); err != nil {
		errs = append(errs, "private_key is not an RSA private key in PEM")
	} else {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			errs = append(errs, "private_key: unusable public key")
		}
		fp = fingerprint(der)
	}
	if len(errs) == 0 {
		if _, err := google.JWTConfigFromJSON(raw, fcmScope); err != nil {
			errs = append(errs, "not a usable service account")
		}
	}
	if len(errs) > 0 {
		return parsedCredential{}, badCredential("fcm: service_account: %s", strings.Join(errs, "; "))
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return parsedCredential{}, badCredential("fcm: service_account is not valid JSON")
	}
	pub := map[string]string{"project_id": sa.ProjectID, "client_email": sa.ClientEmail}
	if sa.PrivateKeyID != "" {
		pub["private_key_id"] = sa.PrivateKeyID
	}
	return parsedCredential{plain: compact.Bytes(), public: pub, fingerprint: fp}, nil
}

func rsaPublicKey(pemText string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok {
			return &rk.PublicKey, nil
		}
		return nil, errors.New("not RSA")
	}
	rk, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	return &rk.PublicKey, nil
}

func parseWebPush(c webPushCredential) (parsedCredential, error) {
	var errs []string
	if len(c.Subject) > maxSubject {
		errs = append(errs, "subject is longer than "+strconv.Itoa(maxSubject)+" bytes")
	} else if !subjectShape(c.Subject) {
		errs = append(errs, subjectRule)
	}
	var key *vapidKey
	switch {
	case c.PrivateKey == "":
		errs = append(errs, "private_key is required (or let the server make the pair: POST .../credentials/webpush/generate)")
	case len(c.PrivateKey) > maxVAPIDPrivateKey:
		errs = append(errs, "private_key is too long for a VAPID key")
	default:
		k, err := parseVAPIDKey(c.PrivateKey)
		if err != nil {
			errs = append(errs, "private_key is not a VAPID private key (the 32-byte P-256 key in base64url)")
			break
		}
		if c.PublicKey != "" && c.PublicKey != k.public {
			errs = append(errs, "public_key does not match private_key")
			break
		}
		key = k
	}
	if len(errs) > 0 {
		return parsedCredential{}, badCredential("webpush: %s", strings.Join(errs, "; "))
	}
	return webPushParsed(c.Subject, key)
}

// webPushParsed is what is stored for a VAPID key: the private key and
// subject sealed, the public key shown.
func webPushParsed(subject string, key *vapidKey) (parsedCredential, error) {
	plain, err := json.Marshal(webPushCredential{Subject: subject, PrivateKey: key.private})
	if err != nil {
		return parsedCredential{}, err
	}
	raw, err := base64.RawURLEncoding.DecodeString(key.public)
	if err != nil {
		return parsedCredential{}, err
	}
	return parsedCredential{plain: plain, fingerprint: fingerprint(raw),
		public: map[string]string{"subject": subject, "vapid_public_key": key.public}}, nil
}

// fingerprint names key material by its public part: "sha256:" and the
// first 16 hex digits of its SHA-256.
func fingerprint(public []byte) string {
	sum := sha256.Sum256(public)
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// fcmScope is FCM's OAuth2 scope, as push/fcm has it (push cannot import
// its provider packages: they import push).
const fcmScope = "https://www.googleapis.com/auth/firebase.messaging"

const subjectRule = `subject must be "mailto:<address>" or an "https://" URL`

// subjectShape is a first check of a VAPID subject (RFC 8292 §2.1); the
// Web Push sender's own check (webpush.CheckSubject, run when the client
// is built) is the thorough one.
func subjectShape(s string) bool {
	switch {
	case strings.HasPrefix(s, "mailto:"):
		return strings.Contains(s, "@")
	case strings.HasPrefix(s, "https://"):
		u, err := url.Parse(s)
		return err == nil && u.Hostname() != ""
	}
	return false
}

// vapidKey is a VAPID key pair in the web-push libraries' formats: the
// 32-byte private scalar and the 65-byte uncompressed public point, both
// base64url without padding (what push/webpush.ParseVAPIDKey reads).
type vapidKey struct {
	private, public string
}

func generateVAPIDKey() (*vapidKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("push: generate VAPID key: %w", err)
	}
	return newVAPIDKeyPair(priv)
}

func parseVAPIDKey(private string) (*vapidKey, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(private, "="))
	if err != nil {
		return nil, errors.New("not base64url")
	}
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		return nil, errors.New("not a P-256 private key")
	}
	return newVAPIDKeyPair(priv)
}

func newVAPIDKeyPair(priv *ecdsa.PrivateKey) (*vapidKey, error) {
	raw, err := priv.Bytes()
	if err != nil {
		return nil, err
	}
	pub, err := priv.PublicKey.Bytes()
	if err != nil {
		return nil, err
	}
	return &vapidKey{private: base64.RawURLEncoding.EncodeToString(raw), public: base64.RawURLEncoding.EncodeToString(pub)}, nil
}

// OpenedCredential is one decrypted credential version, handed to the
// ClientBuilder and to nothing else. Exactly one of APNs, FCM and WebPush
// is set. It holds secrets: never log it, and drop it once the client is
// built.
type OpenedCredential struct {
	App      string
	Provider CredentialProvider
	Version  uint64
	APNs     *APNsCredential
	FCM      *FCMCredential
	WebPush  *WebPushCredential
}

// APNsCredential is an APNs token-auth key (spec §2.1).
type APNsCredential struct {
	TeamID, KeyID string
	// Topic is the default apns-topic; "" when devices carry their own.
	Topic string
	// Environment is "production", "sandbox" or "both".
	Environment string
	// P8 is the PKCS#8 PEM of the EC P-256 key. Secret.
	P8 []byte
}

// FCMCredential is a Google service account (spec §2.2).
type FCMCredential struct {
	// ServiceAccount is the service-account JSON. Secret.
	ServiceAccount []byte
	ProjectID      string
}

// WebPushCredential is a VAPID key pair and subject (spec §2.3).
type WebPushCredential struct {
	Subject string
	// PrivateKey is the 32-byte P-256 scalar in base64url. Secret.
	PrivateKey string
	// PublicKey is the 65-byte uncompressed point in base64url.
	PublicKey string
}

// ClientBuilder makes the provider client of an opened credential
// (*apns.Client, *fcm.Client, *webpush.Sender: see push/providers, which
// main passes in Deps). A client with a Close() method is closed when its
// version is revoked. An error is a refused credential: its text names
// fields, never values.
type ClientBuilder func(OpenedCredential) (any, error)

// openCredential decodes a stored plaintext for the builder.
func openCredential(app string, p CredentialProvider, version uint64, plain []byte) (OpenedCredential, error) {
	oc := OpenedCredential{App: app, Provider: p, Version: version}
	switch p {
	case ProviderAPNs:
		var c apnsCredential
		if err := json.Unmarshal(plain, &c); err != nil {
			return oc, fmt.Errorf("push: apns credential v%d: %w", version, err)
		}
		oc.APNs = &APNsCredential{TeamID: c.TeamID, KeyID: c.KeyID, Topic: c.Topic, Environment: c.Environment, P8: []byte(c.P8)}
	case ProviderFCM:
		var sa struct {
			ProjectID string `json:"project_id"`
		}
		if err := json.Unmarshal(plain, &sa); err != nil {
			return oc, fmt.Errorf("push: fcm credential v%d: %w", version, err)
		}
		oc.FCM = &FCMCredential{ServiceAccount: plain, ProjectID: sa.ProjectID}
	case ProviderWebPush:
		var c webPushCredential
		if err := json.Unmarshal(plain, &c); err != nil {
			return oc, fmt.Errorf("push: webpush credential v%d: %w", version, err)
		}
		k, err := parseVAPIDKey(c.PrivateKey)
		if err != nil {
			return oc, fmt.Errorf("push: webpush credential v%d: %w", version, err)
		}
		oc.WebPush = &WebPushCredential{Subject: c.Subject, PrivateKey: c.PrivateKey, PublicKey: k.public}
	default:
		return oc, unknownProvider(string(p))
	}
	return oc, nil
}
