package push

// Push audit actions (shared/spec/push-api.md §4.7): entries of the
// app's hash-chained push audit trail.
const (
	AuditPublishCreate       = "publish.create"
	AuditPublishSchedule     = "publish.schedule"
	AuditPublishCancel       = "publish.cancel"
	AuditPublishFinish       = "publish.finish"
	AuditPublishReplay       = "publish.replay"
	AuditDeviceInvalidated   = "device.invalidated"
	AuditCredentialUnhealthy = "credential.unhealthy"
	AuditLimitExceeded       = "limit.exceeded"
)

// auditRecord is one entry for the push audit trail, before it is chained.
type auditRecord struct {
	app, actor, action, target, outcome string
	requestID, ip                       string
	details                             map[string]any
}

// record appends a to the push audit trail, when there is one.
func (s *Service) record(a auditRecord) {
	if s.trail != nil {
		s.trail(a)
	}
}
