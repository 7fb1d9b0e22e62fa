package server

// Event names reported to the EventSink (shared/spec/pusher-protocol.md §5.2).
const (
	EventChannelOccupied   = "channel_occupied"
	EventChannelVacated    = "channel_vacated"
	EventMemberAdded       = "member_added"
	EventMemberRemoved     = "member_removed"
	EventClientEvent       = "client_event"
	EventCacheMiss         = "cache_miss"
	EventSubscriptionCount = "subscription_count"
)

// Event is a channel lifecycle event, the raw material of webhooks. The
// fields a Name does not use are zero.
type Event struct {
	App     string
	Name    string
	Channel string
	// UserID is the presence user of member_added, member_removed and of a
	// client_event on a presence channel.
	UserID string
	// Event and Data are a client_event's name and its data as a string.
	Event, Data string
	// SocketID is the sender of a client_event.
	SocketID string
	// SubscriptionCount is the channel's count for subscription_count.
	SubscriptionCount int
}

// EventSink receives lifecycle events. Emit is called outside hub locks,
// in the order the transitions happened per channel; it must not block
// (implementations queue). Events fire on raw transitions: grace periods
// (vacated then re-occupied) and de-duplication are the sink's business.
type EventSink interface {
	Emit(Event)
}

type nopSink struct{}

func (nopSink) Emit(Event) {}

// SetEventSink installs the receiver of lifecycle events. Call it before
// Serve; nil means none.
func (s *Server) SetEventSink(sink EventSink) {
	if sink == nil {
		sink = nopSink{}
	}
	s.events = sink
}

// transition records what one subscribe or unsubscribe changed, collected
// under the channel lock and emitted after it is released.
type transition struct {
	occupied, vacated bool
	memberAdded       string // user id
	memberRemoved     string // user id
	cacheMiss         bool
	count             int // subscription count after the change; -1 for presence
}

// emit reports t for channel ch of app.
func (s *Server) emit(app, ch string, t transition) {
	if t.occupied {
		s.events.Emit(Event{App: app, Name: EventChannelOccupied, Channel: ch})
	}
	if t.memberAdded != "" {
		s.events.Emit(Event{App: app, Name: EventMemberAdded, Channel: ch, UserID: t.memberAdded})
	}
	if t.memberRemoved != "" {
		s.events.Emit(Event{App: app, Name: EventMemberRemoved, Channel: ch, UserID: t.memberRemoved})
	}
	if t.count >= 0 && !t.vacated {
		s.events.Emit(Event{App: app, Name: EventSubscriptionCount, Channel: ch, SubscriptionCount: t.count})
	}
	if t.cacheMiss {
		s.events.Emit(Event{App: app, Name: EventCacheMiss, Channel: ch})
	}
	if t.vacated {
		s.events.Emit(Event{App: app, Name: EventChannelVacated, Channel: ch})
	}
}

// Audit actions recorded by the server.
const (
	AuditAuthDenied    = "auth_denied"
	AuditSigninDenied  = "signin_denied"
	AuditOriginRefused = "origin_refused"
	AuditRateLimited   = "rate_limited"
	AuditAPIDenied     = "api_signature_denied"
)

// AuditRecord is one security-relevant event. It never carries a secret,
// a signature or a payload.
type AuditRecord struct {
	App     string
	Action  string
	IP      string
	Channel string
	UserID  string
	Reason  string
}

// AuditLog keeps audit records. Record is called outside hub locks and
// must not block (implementations buffer and may drop under a flood).
type AuditLog interface {
	Record(AuditRecord)
}

type nopAudit struct{}

func (nopAudit) Record(AuditRecord) {}

// SetAuditLog installs the audit log. Call it before Serve; nil means none.
func (s *Server) SetAuditLog(l AuditLog) {
	if l == nil {
		l = nopAudit{}
	}
	s.audit = l
}
