package protocol

import "strconv"

// Code is a Pusher error or close code (§1.5). The zero Code renders as
// null: real Pusher sends code null for non-fatal protocol errors.
type Code int

// Pusher codes, §1.5.
const (
	CodeNone                 Code = 0
	CodeSSLOnly              Code = 4000
	CodeAppNotFound          Code = 4001
	CodeAppDisabled          Code = 4003
	CodeOverQuota            Code = 4004
	CodePathNotFound         Code = 4005
	CodeInvalidVersion       Code = 4006
	CodeUnsupportedProtocol  Code = 4007
	CodeNoProtocol           Code = 4008
	CodeUnauthorized         Code = 4009
	CodeOverCapacity         Code = 4100
	CodeReconnect            Code = 4200
	CodePongTimeout          Code = 4201
	CodeInactive             Code = 4202
	CodeClientEventRateLimit Code = 4301
	CodeWatchlistLimit       Code = 4302
)

// Closes reports whether a socket must be closed with this code after the
// pusher:error. 43xx codes are never close codes: pusher-js treats a close
// code >= 4300 as "refused" and stops reconnecting for good (§1.4).
func (c Code) Closes() bool { return c >= 4000 && c < 4300 }

// Error is a Pusher protocol error: rendered as a pusher:error frame, and
// followed by a close frame with the same code when Code.Closes.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string {
	if e.Code == CodeNone {
		return e.Message
	}
	return strconv.Itoa(int(e.Code)) + ": " + e.Message
}

// Payload renders e as a pusher:error event. data is an object, the one
// exception to double encoding (§1.6).
func (e *Error) Payload() []byte { return AppendError(nil, e.Code, e.Message, "") }

// Frame is Payload as a WebSocket frame.
func (e *Error) Frame() []byte { return ErrorFrame(e.Code, e.Message, "") }

// CloseFrame is the close frame that follows Frame when e.Code closes.
func (e *Error) CloseFrame() []byte { return CloseFrame(e.Code, e.Message) }

// Predefined errors for handshake refusals and closes.
var (
	ErrAppNotFound         = &Error{CodeAppNotFound, "Application does not exist"}
	ErrAppDisabled         = &Error{CodeAppDisabled, "Application disabled"}
	ErrOverQuota           = &Error{CodeOverQuota, "Application is over connection quota"}
	ErrPathNotFound        = &Error{CodePathNotFound, "Path not found"}
	ErrUnsupportedProtocol = &Error{CodeUnsupportedProtocol, "Unsupported protocol version"}
	ErrOriginNotAllowed    = &Error{CodeUnauthorized, "Origin not allowed"}
	ErrOverCapacity        = &Error{CodeOverCapacity, "Over capacity"}
	ErrSlowConsumer        = &Error{CodeOverCapacity, "Connection too slow: outbound buffer full"}
	ErrRateLimited         = &Error{CodeOverCapacity, "Too many connection attempts, retry later"}
	ErrReconnect           = &Error{CodeReconnect, "Server shutting down, please reconnect immediately"}
	ErrPongTimeout         = &Error{CodePongTimeout, "Pong reply not received in time"}
	ErrTerminated          = &Error{CodeUnauthorized, "You got disconnected by the app."}
	ErrClientEventRate     = &Error{CodeClientEventRateLimit, "Client event rejected due to rate limit"}
	ErrWatchlistLimit      = &Error{CodeWatchlistLimit, "Watchlist limit exceeded. Only the first 100 user IDs are accepted."}
)

// SubscriptionError is a refused subscription, sent as
// pusher:subscription_error on the channel (§10): 401 bad auth, 400 bad
// name, 4100 presence full, 413 member too large.
type SubscriptionError struct {
	Status  int
	Message string
}

func (e *SubscriptionError) Error() string {
	return "subscription refused (" + strconv.Itoa(e.Status) + "): " + e.Message
}

// Frame renders e for channel as a WebSocket frame.
func (e *SubscriptionError) Frame(channel string) []byte { return TextFrame(e.Payload(channel)) }

// Payload renders e for channel.
func (e *SubscriptionError) Payload(channel string) []byte {
	typ := "SubscriptionError"
	if e.Status == 401 || e.Status == 429 {
		typ = "AuthError"
	}
	b := append([]byte(nil), `{"event":"pusher:subscription_error","channel":`...)
	b = AppendString(b, channel)
	b = append(b, `,"data":{"type":`...)
	b = AppendString(b, typ)
	b = append(b, `,"error":`...)
	b = AppendString(b, e.Message)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	return append(b, "}}"...)
}
