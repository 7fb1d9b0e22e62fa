package push

import (
	"encoding/json"
	"time"

	"github.com/sockudo/sockudo/storage"
)

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

// entry is a as a trail entry at now.
func (a auditRecord) entry(now time.Time) storage.PushAuditEntry {
	e := storage.PushAuditEntry{Time: now, App: a.app, Actor: a.actor, Action: a.action, Target: a.target,
		RequestID: a.requestID, RemoteIP: a.ip, Outcome: a.outcome}
	if a.details != nil {
		e.Details, _ = json.Marshal(a.details)
	}
	return e
}
