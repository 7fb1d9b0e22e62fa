package push

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// auditBase is where the audit trail routes live (spec §4.7).
const auditBase = "/apps/{app_id}/push/audit"

// AuditRoute is GET /apps/{app_id}/push/audit: the app's push audit trail,
// oldest first, filtered by the query since and until (unix seconds or RFC
// 3339; since inclusive, until exclusive), action, actor and target, paged
// by cursor and limit (1-1000, default 100). It answers
// {"items":[…],"next_cursor":"…"|null}.
func AuditRoute(db *storage.DB) SignedRoute {
	return SignedRoute{"GET " + auditBase, func(w http.ResponseWriter, r *http.Request, appID string, _ []byte) {
		f, aerr := auditFilter(r.URL.Query())
		if aerr != nil {
			replyError(w, aerr)
			return
		}
		items, next, err := db.PushAudit(appID, f)
		if errors.Is(err, storage.ErrInvalid) {
			replyError(w, errorf(400, "invalid_cursor", "cursor is not one this API returned"))
			return
		}
		if err != nil {
			replyError(w, errorf(500, "internal_error", "reading the audit trail failed"))
			return
		}
		page := struct {
			Items      []storage.PushAuditEntry `json:"items"`
			NextCursor *string                  `json:"next_cursor"`
		}{Items: items}
		if next != "" {
			page.NextCursor = &next
		}
		replyJSON(w, http.StatusOK, page)
	}}
}

// AuditVerifyRoute is GET /apps/{app_id}/push/audit/verify: it checks the
// app's hash chain and answers {"ok":bool,"entries":n,"first_bad_id":…,
// "problem":…} (storage.PushAuditReport). A broken chain is still a 200:
// the verification itself worked.
func AuditVerifyRoute(db *storage.DB) SignedRoute {
	return SignedRoute{"GET " + auditBase + "/verify", func(w http.ResponseWriter, r *http.Request, appID string, _ []byte) {
		reports, err := db.VerifyPushAudit(appID)
		if err != nil || len(reports) != 1 {
			replyError(w, errorf(500, "internal_error", "verifying the audit trail failed"))
			return
		}
		replyJSON(w, http.StatusOK, reports[0])
	}}
}

// AuditRoutes are AuditRoute and AuditVerifyRoute.
func AuditRoutes(db *storage.DB) []SignedRoute {
	return []SignedRoute{AuditRoute(db), AuditVerifyRoute(db)}
}

// auditFilter reads the audit trail query.
func auditFilter(q url.Values) (storage.PushAuditFilter, *apiError) {
	f := storage.PushAuditFilter{Action: q.Get("action"), Actor: q.Get("actor"), Target: q.Get("target"),
		Cursor: q.Get("cursor")}
	for _, x := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := q.Get(x.name)
		if v == "" {
			continue
		}
		t, ok := auditTime(v)
		if !ok {
			return f, errorf(400, "bad_request", "%s is unix seconds or an RFC 3339 time", x.name)
		}
		*x.t = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > storage.MaxPushAuditLimit {
			return f, errorf(400, "bad_request", "limit is 1-%d", storage.MaxPushAuditLimit)
		}
		f.Limit = n
	}
	return f, nil
}

// auditTime parses unix seconds or an RFC 3339 time.
func auditTime(v string) (time.Time, bool) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > 1<<40 { // far beyond any audit entry, and time.Unix stays exact
			return time.Time{}, false
		}
		return time.Unix(n, 0).UTC(), true
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}
