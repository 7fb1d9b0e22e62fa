package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/sockudo/sockudo/internal/netguard"
	"github.com/sockudo/sockudo/push/internal/jws"
	"github.com/sockudo/sockudo/storage"
)

// Audit actions of credential changes. Their Reason names the provider,
// version and fingerprint, and who made the change; never the material.
const (
	AuditCredentialPut       = "push_credential_put"
	AuditVAPIDGenerated      = "push_vapid_generated"
	AuditCredentialRevoked   = "push_credential_revoked"
	AuditCredentialValidated = "push_credential_validated"
	AuditCredentialsResealed = "push_credentials_resealed"
)

// Credential statuses as the API shows them: a non-revoked version older
// than the current one is retiring (Web Push devices subscribed with it
// still receive through it).
const (
	StatusActive   = "active"
	StatusRetiring = "retiring"
	StatusRevoked  = "revoked"
)

// validateTimeout bounds a live validation (an FCM access-token fetch).
const validateTimeout = 10 * time.Second

// Credentials manages apps' provider credentials: it checks and seals new
// versions, revokes, validates, lists their metadata and audits every
// change. The HTTP API and the CLI both go through it. It is safe for
// concurrent use.
type Credentials struct {
	db    *storage.DB
	seal  *sealer // nil without an encryption key: writes are refused
	build ClientBuilder
	reg   *CredentialRegistry
	audit Audit
	cfg   Config
	now   func() time.Time
	// trail, when set (SetTrail), also receives every change as a push
	// audit trail entry.
	trail atomic.Pointer[func(storage.PushAuditEntry)]
}

// Push audit trail actions of credential changes (spec §4.7). A generated
// VAPID key is a put with details "generated": true.
const (
	TrailCredentialPut      = "credential.put"
	TrailCredentialValidate = "credential.validate"
	TrailCredentialRevoke   = "credential.revoke"
	TrailCredentialReseal   = "credential.reseal"
)

// SetTrail makes every credential change (put, generate, validate, revoke,
// reseal) also an entry of the push audit trail, recorded with record
// (AuditTrail.Record); nil stops that. The Changes audit log keeps its
// entries either way. Safe to call at any time, though changes made before
// it are not in the trail.
func (m *Credentials) SetTrail(record func(storage.PushAuditEntry)) {
	if record == nil {
		m.trail.Store(nil)
		return
	}
	m.trail.Store(&record)
}

// NewCredentials returns the credential manager over db. cfg.CredentialKey
// is the encryption key (nil refuses writes with ErrCredentialKeyMissing);
// build makes provider clients (push/providers.Builder; nil only checks
// what push itself can, and the registry then serves nothing); audit
// receives one entry per change; now is the clock (nil: time.Now).
func NewCredentials(db *storage.DB, cfg Config, build ClientBuilder, audit Audit, now func() time.Time) (*Credentials, error) {
	if now == nil {
		now = time.Now
	}
	if audit == nil {
		audit = nopAudit{}
	}
	var s *sealer
	if len(cfg.CredentialKey) != 0 {
		var err error
		if s, err = newSealer(cfg.CredentialKey, cfg.PreviousCredentialKeys...); err != nil {
			return nil, err
		}
	}
	return &Credentials{db: db, seal: s, build: build, reg: newCredentialRegistry(db, s, build, now), audit: audit,
		cfg: cfg, now: now}, nil
}

// Registry is the live provider clients the publish pipeline sends with.
func (m *Credentials) Registry() *CredentialRegistry { return m.reg }

// CredentialActor is who makes a change, for the audit log.
type CredentialActor struct {
	// Source is "api", "cli" or "admin"; Key the app key that signed an
	// API request; IP the client address.
	Source, Key, IP string
}

// trailActor is a as the audit trail names actors: "key:<app key>" for a
// signed API request, "operator:cli" or "operator:admin" for an operator.
func (a CredentialActor) trailActor() string {
	switch {
	case a.Key != "":
		return "key:" + a.Key
	case a.Source == "":
		return "system"
	}
	return "operator:" + a.Source
}

func (a CredentialActor) String() string {
	s := "by " + a.Source
	if a.Key != "" {
		s += " key:" + a.Key
	}
	return s
}

// CredentialVersion is one version's metadata as the API and CLI show it.
// It never holds key material.
type CredentialVersion struct {
	Provider    CredentialProvider `json:"provider"`
	Version     uint64             `json:"version"`
	Status      string             `json:"status"`
	Fingerprint string             `json:"fingerprint"`
	CreatedAt   time.Time          `json:"created_at"`
	CreatedBy   string             `json:"created_by,omitempty"`
	RevokedAt   time.Time          `json:"revoked_at,omitzero"`
	LastUsedAt  time.Time          `json:"last_used_at,omitzero"`
	LastError   string             `json:"last_error,omitempty"`
	LastErrorAt time.Time          `json:"last_error_at,omitzero"`

	// APNs.
	TeamID      string `json:"team_id,omitempty"`
	KeyID       string `json:"key_id,omitempty"`
	Topic       string `json:"topic,omitempty"`
	Environment string `json:"environment,omitempty"`
	// FCM.
	ProjectID    string `json:"project_id,omitempty"`
	ClientEmail  string `json:"client_email,omitempty"`
	PrivateKeyID string `json:"private_key_id,omitempty"`
	// Web Push.
	Subject        string `json:"subject,omitempty"`
	VAPIDPublicKey string `json:"vapid_public_key,omitempty"`
	VAPIDKeyID     string `json:"vapid_key_id,omitempty"`
}

// ProviderCredentials are one provider's versions, oldest first.
type ProviderCredentials struct {
	Provider CredentialProvider `json:"provider"`
	// CurrentVersion is the version new sends use; 0 when there is none.
	CurrentVersion uint64              `json:"current_version"`
	Versions       []CredentialVersion `json:"versions"`
}

func versionOf(c storage.PushCredential, current uint64) CredentialVersion {
	v := CredentialVersion{
		Provider: CredentialProvider(c.Provider), Version: c.Version, Fingerprint: c.Fingerprint,
		CreatedAt: c.CreatedAt, CreatedBy: c.CreatedBy, RevokedAt: c.RevokedAt, LastUsedAt: c.LastUsedAt,
		LastError: c.LastError, LastErrorAt: c.LastErrorAt,
		TeamID: c.Public["team_id"], KeyID: c.Public["key_id"], Topic: c.Public["topic"],
		Environment: c.Public["environment"], ProjectID: c.Public["project_id"],
		ClientEmail: c.Public["client_email"], PrivateKeyID: c.Public["private_key_id"],
		Subject: c.Public["subject"], VAPIDPublicKey: c.Public["vapid_public_key"],
	}
	if v.Provider == ProviderWebPush {
		v.VAPIDKeyID = VAPIDKeyID(c.Version)
	}
	switch {
	case c.Status == storage.PushCredentialRevoked:
		v.Status = StatusRevoked
	case c.Version == current:
		v.Status = StatusActive
	default:
		v.Status = StatusRetiring
	}
	return v
}

// Put checks body (the provider's JSON credential), seals it as a new
// version of app's credential for p, makes it current at once and audits
// it. Errors: *CredentialError for a refused body, ErrCredentialKeyMissing
// without an encryption key.
func (m *Credentials) Put(app string, p CredentialProvider, body []byte, by CredentialActor) (CredentialVersion, error) {
	if _, ok := ParseCredentialProvider(string(p)); !ok {
		return CredentialVersion{}, unknownProvider(string(p))
	}
	if m.seal == nil {
		return CredentialVersion{}, ErrCredentialKeyMissing
	}
	parsed, err := parseCredential(p, body)
	if err != nil {
		return CredentialVersion{}, err
	}
	lc, err := m.tryBuild(app, p, parsed.plain)
	if err != nil {
		return CredentialVersion{}, err
	}
	return m.store(app, p, parsed, lc, AuditCredentialPut, by)
}

// GenerateVAPID makes a VAPID key pair on the server, stores it as a new
// Web Push version and returns its metadata: the private key never leaves
// the server.
func (m *Credentials) GenerateVAPID(app, subject string, by CredentialActor) (CredentialVersion, error) {
	if m.seal == nil {
		return CredentialVersion{}, ErrCredentialKeyMissing
	}
	if len(subject) > maxSubject || !subjectShape(subject) {
		return CredentialVersion{}, badCredential("webpush: " + subjectRule)
	}
	key, err := generateVAPIDKey()
	if err != nil {
		return CredentialVersion{}, err
	}
	parsed, err := webPushParsed(subject, key)
	if err != nil {
		return CredentialVersion{}, err
	}
	lc, err := m.tryBuild(app, ProviderWebPush, parsed.plain)
	if err != nil {
		return CredentialVersion{}, err
	}
	return m.store(app, ProviderWebPush, parsed, lc, AuditVAPIDGenerated, by)
}

// tryBuild builds the client of a credential before it is stored, so the
// provider package's own checks (a VAPID subject Apple accepts, say) refuse
// it with a 400 rather than at the first send. The client built becomes
// the live one once stored. Without a builder it returns nothing.
func (m *Credentials) tryBuild(app string, p CredentialProvider, plain []byte) (*LiveCredential, error) {
	if m.build == nil {
		return nil, nil
	}
	oc, err := openCredential(app, p, 0, plain)
	if err == nil {
		var cl any
		if cl, err = m.build(oc); err == nil {
			lc := &LiveCredential{App: app, Provider: p, Client: cl}
			if oc.APNs != nil {
				lc.Topic, lc.Environment = oc.APNs.Topic, oc.APNs.Environment
			}
			return lc, nil
		}
	}
	// The provider packages prefix their errors with their name.
	msg := redact(err)
	if !strings.HasPrefix(msg, string(p)+":") && !strings.HasPrefix(msg, "fcm:") && !strings.HasPrefix(msg, "apns:") {
		msg = string(p) + ": " + msg
	}
	return nil, badCredential("%s", msg)
}

// store seals and stores a checked credential as a new version, makes lc
// (its client, nil to build it at the next lookup) current and audits it.
func (m *Credentials) store(app string, p CredentialProvider, parsed parsedCredential, lc *LiveCredential, action string, by CredentialActor) (CredentialVersion, error) {
	meta := storage.PushCredential{Fingerprint: parsed.fingerprint, Public: parsed.public,
		CreatedAt: m.now().UTC(), CreatedBy: by.Source}
	rec, retired, err := m.db.AddPushCredential(app, string(p), meta, func(v uint64) ([]byte, error) {
		return m.seal.seal(app, p, v, parsed.plain)
	})
	if err != nil {
		if lc != nil {
			lc.dispose()
		}
		return CredentialVersion{}, err
	}
	if len(retired) > 0 {
		// Over storage.MaxUsablePushCredentials: the oldest usable
		// versions were revoked with the put.
		m.reg.Revoked(app, p, retired)
	}
	if lc != nil {
		lc.Version = rec.Version
		m.reg.installed(lc)
	} else {
		m.reg.Changed(app, p)
	}
	m.record(app, action, fmt.Sprintf("%s v%d %s %s", p, rec.Version, rec.Fingerprint, by), by)
	m.chain(app, TrailCredentialPut, p, rec.Version, by, "ok", trailDetails{Fingerprint: rec.Fingerprint,
		Generated: action == AuditVAPIDGenerated})
	for _, rv := range retired {
		m.record(app, AuditCredentialRevoked, fmt.Sprintf("%s v%d %s (more than %d usable versions)", p, rv, by,
			storage.MaxUsablePushCredentials), by)
		m.chain(app, TrailCredentialRevoke, p, rv, by, "ok", trailDetails{Fingerprint: m.fingerprint(app, p, rv),
			Reason: fmt.Sprintf("more than %d usable versions", storage.MaxUsablePushCredentials)})
	}
	return versionOf(rec, rec.Version), nil
}

func (m *Credentials) record(app, action, reason string, by CredentialActor) {
	m.audit.Record(storage.AuditEntry{Time: m.now().UTC(), App: app, Action: action, IP: by.IP, Reason: reason})
}

// trailDetails are the details of a credential trail entry: what names the
// version, never key material.
type trailDetails struct {
	Provider    CredentialProvider `json:"provider,omitempty"`
	Version     uint64             `json:"version,omitempty"`
	Fingerprint string             `json:"fingerprint,omitempty"`
	Generated   bool               `json:"generated,omitempty"`
	Live        bool               `json:"live,omitempty"`
	Error       string             `json:"error,omitempty"`
	Reason      string             `json:"reason,omitempty"`
	Versions    int                `json:"versions,omitempty"`
}

// chain records a change in the audit trail, when one is set; v 0 means
// the change concerns no one version (a reseal).
func (m *Credentials) chain(app, action string, p CredentialProvider, v uint64, by CredentialActor, outcome string, d trailDetails) {
	rec := m.trail.Load()
	if rec == nil {
		return
	}
	target := "credential:" + string(p)
	if v != 0 {
		target += "/v" + strconv.FormatUint(v, 10)
	}
	if p == "" {
		target = "credentials"
	}
	d.Provider, d.Version = p, v
	details, _ := json.Marshal(d) // plain fields: cannot fail
	(*rec)(storage.PushAuditEntry{Time: m.now().UTC(), App: app, Actor: by.trailActor(), Action: action,
		Target: target, RemoteIP: by.IP, Outcome: outcome, Details: details})
}

// fingerprint is version v's fingerprint, for the trail; "" when it cannot
// be read (the trail entry is still worth having).
func (m *Credentials) fingerprint(app string, p CredentialProvider, v uint64) string {
	if m.trail.Load() == nil {
		return ""
	}
	rec, err := m.db.PushCredential(app, string(p), v)
	if err != nil {
		return ""
	}
	return rec.Fingerprint
}

// List returns app's credentials for p, or for every provider when p is
// "" (each provider listed, with no versions when it has none).
func (m *Credentials) List(app string, p CredentialProvider) ([]ProviderCredentials, error) {
	providers := CredentialProviders
	if p != "" {
		if _, ok := ParseCredentialProvider(string(p)); !ok {
			return nil, unknownProvider(string(p))
		}
		providers = []CredentialProvider{p}
	}
	recs, err := m.db.PushCredentials(app, string(p))
	if err != nil {
		return nil, err
	}
	out := make([]ProviderCredentials, 0, len(providers))
	for _, prov := range providers {
		pc := ProviderCredentials{Provider: prov, Versions: []CredentialVersion{}}
		for _, r := range recs {
			if CredentialProvider(r.Provider) == prov && r.Status == storage.PushCredentialActive {
				pc.CurrentVersion = max(pc.CurrentVersion, r.Version)
			}
		}
		for _, r := range recs {
			if CredentialProvider(r.Provider) == prov {
				pc.Versions = append(pc.Versions, versionOf(r, pc.CurrentVersion))
			}
		}
		out = append(out, pc)
	}
	return out, nil
}

// RevokeResult is what a revoke did.
type RevokeResult struct {
	Provider CredentialProvider `json:"provider"`
	// Revoked are the versions this call revoked (none when they already
	// were).
	Revoked []uint64 `json:"revoked"`
	// CurrentVersion is the version sends use now; 0 when none is left.
	CurrentVersion uint64 `json:"current_version"`
}

// Revoke revokes version v of app's credential for p, or every version
// when v is 0, effective at once: new sends no longer find it. It needs
// no encryption key, so a credential can be revoked even when the key is
// lost. Unknown versions give an error wrapping storage.ErrNotFound.
func (m *Credentials) Revoke(app string, p CredentialProvider, v uint64, by CredentialActor) (RevokeResult, error) {
	if _, ok := ParseCredentialProvider(string(p)); !ok {
		return RevokeResult{}, unknownProvider(string(p))
	}
	revoked, err := m.db.RevokePushCredential(app, string(p), v, m.now())
	if err != nil {
		return RevokeResult{}, err
	}
	m.reg.Revoked(app, p, revoked)
	res := RevokeResult{Provider: p, Revoked: revoked}
	if cur, err := m.db.CurrentPushCredential(app, string(p)); err == nil {
		res.CurrentVersion = cur.Version
	}
	for _, rv := range revoked {
		m.record(app, AuditCredentialRevoked, fmt.Sprintf("%s v%d %s", p, rv, by), by)
		m.chain(app, TrailCredentialRevoke, p, rv, by, "ok", trailDetails{Fingerprint: m.fingerprint(app, p, rv)})
	}
	return res, nil
}

// ResealResult is what a reseal did.
type ResealResult struct {
	// Resealed counts, per app, the versions now sealed with the current
	// key.
	Resealed map[string]int `json:"resealed"`
	// Unreadable are the versions ("app/provider/vN") that neither the
	// current nor a previous key opens; they are left as they are.
	Unreadable []string `json:"unreadable"`
}

// Reseal seals again, with the current encryption key, every credential
// version of app (of every app when app is "") that a previous key sealed
// (Config.PreviousCredentialKeys): the second step of a master-key
// rotation, after which the previous key can go. Revoked versions are
// resealed too. Each app's reseal is audited.
func (m *Credentials) Reseal(app string, by CredentialActor) (ResealResult, error) {
	if m.seal == nil {
		return ResealResult{}, ErrCredentialKeyMissing
	}
	res := ResealResult{Unreadable: []string{}}
	changed, err := m.db.ResealPushCredentials(app, func(c storage.PushCredential) ([]byte, error) {
		if keyID(c.Sealed) == m.seal.kid {
			return nil, nil
		}
		p := CredentialProvider(c.Provider)
		plain, err := m.seal.open(c.App, p, c.Version, c.Sealed)
		if err != nil {
			res.Unreadable = append(res.Unreadable, fmt.Sprintf("%s/%s/v%d", c.App, c.Provider, c.Version))
			return nil, nil
		}
		return m.seal.seal(c.App, p, c.Version, plain)
	})
	if err != nil {
		return ResealResult{}, err
	}
	res.Resealed = changed
	for a, n := range changed {
		m.record(a, AuditCredentialsResealed, fmt.Sprintf("%d versions to key %s %s", n, m.seal.kid, by), by)
		m.chain(a, TrailCredentialReseal, "", 0, by, "ok", trailDetails{Versions: n})
	}
	return res, nil
}

// ValidationResult is the outcome of a validation.
type ValidationResult struct {
	Provider CredentialProvider `json:"provider"`
	Version  uint64             `json:"version"`
	OK       bool               `json:"ok"`
	// Live is true when the provider was asked (an FCM access token was
	// fetched), false when the credential was only opened, parsed and
	// made into a client.
	Live  bool   `json:"live"`
	Error string `json:"error,omitempty"`
}

// Validate opens version v (0: the current one) of app's credential for
// p and builds its client: an APNs provider token is signed, an FCM
// service account parsed, a VAPID key checked against its subject. With
// live, FCM also fetches an access token from Google. The outcome is
// stored as the version's last error (or its end) and audited.
func (m *Credentials) Validate(ctx context.Context, app string, p CredentialProvider, v uint64, live bool, by CredentialActor) (ValidationResult, error) {
	if _, ok := ParseCredentialProvider(string(p)); !ok {
		return ValidationResult{}, unknownProvider(string(p))
	}
	var (
		rec storage.PushCredential
		err error
	)
	if v == 0 {
		rec, err = m.db.CurrentPushCredential(app, string(p))
	} else {
		rec, err = m.db.PushCredential(app, string(p), v)
	}
	if err != nil {
		return ValidationResult{}, err
	}
	res := ValidationResult{Provider: p, Version: rec.Version}
	if rec.Status == storage.PushCredentialRevoked {
		return res, fmt.Errorf("%w: %s v%d", ErrCredentialRevoked, p, rec.Version)
	}
	if m.seal == nil {
		return res, ErrCredentialKeyMissing
	}
	problem := m.check(ctx, app, p, rec, live, &res)
	res.OK = problem == ""
	res.Error = problem
	if err := m.db.RecordPushCredentialCheck(app, string(p), rec.Version, m.now(), problem); err != nil {
		return res, err
	}
	outcome := "ok"
	if !res.OK {
		outcome = "failed"
	}
	m.record(app, AuditCredentialValidated, fmt.Sprintf("%s v%d %s %s", p, rec.Version, outcome, by), by)
	m.chain(app, TrailCredentialValidate, p, rec.Version, by, outcome, trailDetails{Fingerprint: rec.Fingerprint,
		Live: res.Live, Error: problem})
	return res, nil
}

// check returns why the credential does not work, or "".
func (m *Credentials) check(ctx context.Context, app string, p CredentialProvider, rec storage.PushCredential, live bool, res *ValidationResult) string {
	plain, err := m.seal.open(app, p, rec.Version, rec.Sealed)
	switch {
	case errors.Is(err, ErrCredentialOtherKey):
		return "sealed with another encryption key than the configured one"
	case err != nil:
		return "the stored credential does not open (tampered or moved)"
	}
	if m.build == nil {
		return "no provider clients in this process"
	}
	lc, err := buildLive(rec, plain, m.build)
	if err != nil {
		return "the credential does not make a client: " + redact(err)
	}
	defer lc.retire()
	switch p {
	case ProviderAPNs:
		if err := signAPNsToken(plain, m.now()); err != nil {
			return "cannot sign a provider token: " + redact(err)
		}
	case ProviderFCM:
		if !live {
			return ""
		}
		res.Live = true
		return m.fetchFCMToken(ctx, plain)
	}
	return ""
}

// fetchFCMToken mints an access token with the service account (spec
// §4.5 "validate").
func (m *Credentials) fetchFCMToken(ctx context.Context, sa []byte) string {
	jc, err := google.JWTConfigFromJSON(sa, fcmScope)
	if err != nil {
		return "not a usable service account"
	}
	tokenURL, override, err := FCMTokenURL(m.cfg, sa)
	if err != nil {
		return tokenURIRule
	}
	jc.TokenURL = tokenURL
	ctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	// The operator's endpoint may be anywhere; a credential's own (Google's)
	// must be public, whatever its name resolves to.
	hc := netguard.NewHTTPClient(netguard.Config{Timeout: validateTimeout, AllowPrivate: override})
	defer hc.CloseIdleConnections()
	if _, err := jc.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, hc)).Token(); err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			code := re.ErrorCode
			if code == "" {
				code = strconv.Itoa(re.Response.StatusCode)
			}
			return "the token endpoint refused the service account: " + code
		}
		return "could not reach the token endpoint"
	}
	return ""
}

// signAPNsToken signs one provider token with an APNs credential, as the
// client will (spec §2.1 "JWT"), without sending it.
func signAPNsToken(plain []byte, now time.Time) error {
	var c apnsCredential
	if err := json.Unmarshal(plain, &c); err != nil {
		return err
	}
	key, err := jws.ParseP8([]byte(c.P8))
	if err != nil {
		return err
	}
	_, err = jws.SignES256(key, struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}{"ES256", c.KeyID}, struct {
		Iss string `json:"iss"`
		Iat int64  `json:"iat"`
	}{c.TeamID, now.Unix()})
	return err
}

// redact keeps an error's first clause: the provider packages' errors
// name fields, never values, but keep it short.
func redact(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.TrimSpace(s)
}

// VAPIDPublicKey returns the current Web Push key of app: its key id
// ("v3") and public key, for browsers to subscribe with. It needs no
// encryption key: the public key is stored in the clear.
func (m *Credentials) VAPIDPublicKey(app string) (keyID, publicKey string, err error) {
	rec, err := m.db.CurrentPushCredential(app, string(ProviderWebPush))
	if errors.Is(err, storage.ErrNotFound) {
		return "", "", ErrNoCredential
	}
	if err != nil {
		return "", "", err
	}
	return VAPIDKeyID(rec.Version), rec.Public["vapid_public_key"], nil
}
