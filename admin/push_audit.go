package admin

import (
	"net/http"
	"net/url"

	"github.com/sockudo/sockudo/storage"
)

// PushAuditVerifier verifies the push audit trail's hash chains;
// *storage.DB implements it.
type PushAuditVerifier interface {
	VerifyPushAudit(app string) ([]storage.PushAuditReport, error)
}

var _ PushAuditVerifier = (*storage.DB)(nil)

// verifyPushAudit is GET /push/audit/verify?app=: the reports of the app's
// chain, or of every app's without app. A broken chain is a report, not an
// error.
func (s *Server) verifyPushAudit(w http.ResponseWriter, r *http.Request) {
	if s.PushAudit == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "the push audit trail is not served"})
		return
	}
	reports, err := s.PushAudit.VerifyPushAudit(r.URL.Query().Get("app"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, reports)
}

// VerifyPushAudit verifies the push audit chain of app ("" = every app)
// in the running server's database.
func (c *Client) VerifyPushAudit(app string) ([]storage.PushAuditReport, error) {
	var reports []storage.PushAuditReport
	return reports, c.do("GET", "/push/audit/verify?"+url.Values{"app": {app}}.Encode(), nil, &reports)
}
