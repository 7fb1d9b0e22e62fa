package server

import "strings"

// originPattern is one allowed origin: "*", an exact origin, or a pattern
// with one "*" such as "https://*.example.com". Matching is
// case-insensitive.
type originPattern struct {
	any            bool
	prefix, suffix string
	wildcard       bool
}

func parseOrigin(s string) originPattern {
	s = strings.ToLower(strings.TrimRight(s, "/"))
	if s == "*" {
		return originPattern{any: true}
	}
	if p, suf, ok := strings.Cut(s, "*"); ok {
		return originPattern{prefix: p, suffix: suf, wildcard: true}
	}
	return originPattern{prefix: s}
}

func (p originPattern) match(origin string) bool {
	switch {
	case p.any:
		return true
	case p.wildcard:
		// The wildcard must stand for at least one character.
		return len(origin) > len(p.prefix)+len(p.suffix) &&
			strings.HasPrefix(origin, p.prefix) && strings.HasSuffix(origin, p.suffix)
	default:
		return origin == p.prefix
	}
}

// originAllowed reports whether a socket with this Origin header may
// connect. No patterns means any origin. A missing Origin is allowed: it
// comes from non-browser clients, which can send any Origin they like, so
// refusing them protects nothing.
func (c *appConfig) originAllowed(origin string) bool {
	if len(c.origins) == 0 || origin == "" {
		return true
	}
	origin = strings.ToLower(strings.TrimRight(origin, "/"))
	for _, p := range c.origins {
		if p.match(origin) {
			return true
		}
	}
	return false
}
