package protocol

import "strings"

// ChannelType is the kind of a channel, decided by its name prefix (§2.4).
type ChannelType uint8

// Channel types.
const (
	Public ChannelType = iota
	Private
	Encrypted
	Presence
	ServerToUser
)

// ServerToUserPrefix is the reserved prefix of user channels (§7.12).
const ServerToUserPrefix = "#server-to-user-"

// Channel describes a channel name.
type Channel struct {
	Type ChannelType
	// Cache is true for cache-, private-cache-, private-encrypted-cache- and
	// presence-cache- channels.
	Cache bool
}

// Classify returns the type of name. Prefixes match at the start only.
func Classify(name string) Channel {
	switch {
	case strings.HasPrefix(name, "private-encrypted-"):
		return Channel{Encrypted, strings.HasPrefix(name, "private-encrypted-cache-")}
	case strings.HasPrefix(name, "private-"):
		return Channel{Private, strings.HasPrefix(name, "private-cache-")}
	case strings.HasPrefix(name, "presence-"):
		return Channel{Presence, strings.HasPrefix(name, "presence-cache-")}
	case strings.HasPrefix(name, ServerToUserPrefix):
		return Channel{Type: ServerToUser}
	default:
		return Channel{Public, strings.HasPrefix(name, "cache-")}
	}
}

// NeedsAuth reports whether subscribing needs a signature.
func (c Channel) NeedsAuth() bool {
	return c.Type == Private || c.Type == Encrypted || c.Type == Presence
}

// ValidChannelName reports whether name uses only [A-Za-z0-9_\-=@,.;] and
// is 1..maxLen bytes long. The reserved #server-to-user- prefix is allowed
// in front of a valid user id (§10).
func ValidChannelName(name string, maxLen int) bool {
	if len(name) == 0 || len(name) > maxLen {
		return false
	}
	rest := name
	if strings.HasPrefix(name, ServerToUserPrefix) {
		rest = name[len(ServerToUserPrefix):]
		if rest == "" {
			return false
		}
	}
	for i := 0; i < len(rest); i++ {
		if !nameChar(rest[i]) {
			return false
		}
	}
	return true
}

func nameChar(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	switch b {
	case '_', '-', '=', '@', ',', '.', ';':
		return true
	}
	return false
}

// ValidEventName reports whether a REST event name is acceptable: 1..maxLen
// bytes and not in the reserved pusher: / pusher_internal: namespaces. Any
// other characters are allowed: Laravel publishes App\Events\Foo (§4.3).
func ValidEventName(name string, maxLen int) bool {
	if len(name) == 0 || len(name) > maxLen {
		return false
	}
	return !strings.HasPrefix(name, "pusher:") && !strings.HasPrefix(name, "pusher_internal:")
}

// ValidSocketID reports whether s has the form of a socket id: digits, a
// dot, digits (§1.2).
func ValidSocketID(s string) bool {
	dot := strings.IndexByte(s, '.')
	return dot > 0 && dot < len(s)-1 && allDigits(s[:dot]) && allDigits(s[dot+1:])
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
