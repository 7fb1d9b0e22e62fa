package server

import (
	"errors"
	"strconv"
	"strings"

	"github.com/sockudo/sockudo/server/protocol"
)

// Authorisation of what a socket asks for: channel signatures (§2.4),
// presence members and signin (§10). Refusals are counted, audited and
// rate-limited per client IP.

// presenceMember authorises a presence subscription and returns the member.
// Without channel_data, a signed-in socket (user) may use the private-form
// signature and its signin user data (§2.4, §10).
func (s *Server) presenceMember(c *conn, cfg *appConfig, user *signedUser, name string, sub protocol.Subscribe) (protocol.Member, *protocol.SubscriptionError) {
	var m protocol.Member
	if sub.ChannelData == "" {
		if user == nil {
			return m, &protocol.SubscriptionError{Status: 401, Message: "Presence channels require channel_data (or pusher:signin first)"}
		}
		if e := s.checkChannelAuth(c, cfg, sub.Auth, protocol.ChannelString(c.socketID, name, "")); e != nil {
			return m, e
		}
		m = protocol.Member{UserID: user.id, Info: user.info}
	} else {
		if e := s.checkChannelAuth(c, cfg, sub.Auth, protocol.ChannelString(c.socketID, name, sub.ChannelData)); e != nil {
			return m, e
		}
		var err error
		if m, err = protocol.ParseChannelData(sub.ChannelData); err != nil {
			return m, &protocol.SubscriptionError{Status: 400, Message: "Invalid channel_data: " + err.Error()}
		}
	}
	if limit := cfg.MaxPresenceMemberSizeInKB * 1024; len(m.Info) > limit {
		return m, &protocol.SubscriptionError{Status: 413, Message: "Presence user_info is larger than " + strconv.Itoa(limit) + " bytes"}
	}
	return m, nil
}

// checkChannelAuth verifies a subscription signature over toSign.
func (s *Server) checkChannelAuth(c *conn, cfg *appConfig, token, toSign string) *protocol.SubscriptionError {
	err := protocol.VerifyAuth(token, cfg.Key, cfg.secrets(), toSign)
	if err == nil {
		return nil
	}
	msg, reason := "Invalid signature", "channel_signature"
	switch {
	case errors.Is(err, protocol.ErrAuthKey):
		msg, reason = "Invalid key in subscription auth data", "channel_key"
	case errors.Is(err, protocol.ErrAuthFormat):
		msg, reason = "Invalid auth: expected <key>:<signature>", "channel_format"
	case s.cfg.DebugAuthErrors:
		msg = "Invalid signature: Expected HMAC SHA256 hex digest of " + toSign
	}
	s.metrics.authFailures.WithLabelValues(reason).Inc()
	s.audit.Record(AuditRecord{App: c.app.id, Action: AuditAuthDenied, IP: c.ip, Channel: channelOf(toSign), Reason: reason})
	if !s.cfg.Limits.AuthFailures.Allow(s.limitKey(c.ip)).Allowed {
		s.rateLimited("auth_failures", c.app.id, c.ip)
		// Over the limit the socket goes too: kept open, it could go on
		// asking (and being refused and audited) for free. The error is
		// sent first, then pusher:error and close 4009, the code of a
		// failed signin (shared/spec/pusher-protocol.md §10): in 4001-4099
		// pusher-js does not reconnect (§1.4), whereas 4100 would make it
		// come back after a second and resubscribe with the same bad auth,
		// a loop only the connection limiter would end. The caller's send of
		// e finds the socket closing and does nothing.
		e := &protocol.SubscriptionError{Status: 429, Message: "Too many failed authorisations, retry later"}
		c.send(e.Frame(channelOf(toSign)))
		c.close(&protocol.Error{Code: protocol.CodeUnauthorized, Message: "Too many failed authorisations"}, false)
		return e
	}
	s.warnLimited("auth", "channel auth refused", "app_id", c.app.id, "reason", err.Error())
	return &protocol.SubscriptionError{Status: 401, Message: msg}
}

// channelOf extracts the channel from a channel-auth string to sign
// (socket_id:channel[:channel_data]).
func channelOf(toSign string) string {
	_, rest, _ := strings.Cut(toSign, ":")
	ch, _, _ := strings.Cut(rest, ":")
	return ch
}

// verifySignin checks a pusher:signin and returns the user and its
// user_data as sent; refusal is the reason when it is not valid.
func (s *Server) verifySignin(c *conn, cfg *appConfig, in protocol.Inbound) (u protocol.User, userData, refusal string) {
	si, err := protocol.ParseSignin(in.Data)
	if err != nil {
		return u, "", "Invalid pusher:signin: " + err.Error()
	}
	if err := protocol.VerifyAuth(si.Auth, cfg.Key, cfg.secrets(), protocol.UserString(c.socketID, si.UserData)); err != nil {
		return u, "", "Invalid signature for pusher:signin"
	}
	if u, err = protocol.ParseUserData(si.UserData); err != nil {
		return u, "", "Invalid user_data: " + err.Error()
	}
	return u, si.UserData, ""
}

// signinRefused counts, audits and closes a socket whose signin failed
// (4009).
func (s *Server) signinRefused(c *conn, msg string) {
	s.metrics.authFailures.WithLabelValues("signin").Inc()
	s.audit.Record(AuditRecord{App: c.app.id, Action: AuditSigninDenied, IP: c.ip, Reason: msg})
	if !s.cfg.Limits.AuthFailures.Allow(s.limitKey(c.ip)).Allowed {
		s.rateLimited("auth_failures", c.app.id, c.ip)
	}
	s.warnLimited("signin", "signin refused", "app_id", c.app.id, "reason", msg)
	c.close(&protocol.Error{Code: protocol.CodeUnauthorized, Message: msg}, false)
}
