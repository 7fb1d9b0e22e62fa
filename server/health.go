package server

import "encoding/json"

// HealthCheck reports the state of something the server depends on but
// can serve without (Redis in Redis mode): a non-nil error makes /up
// answer "degraded" with it, still 200, since this node's own clients are
// still served; load balancers should not take every node out at once
// because a shared dependency is down.
type HealthCheck func() error

// WithHealthCheck adds a dependency check named name to /up.
func WithHealthCheck(name string, check HealthCheck) Option {
	return func(s *Server) { s.health = append(s.health, namedCheck{name, check}) }
}

type namedCheck struct {
	name  string
	check HealthCheck
}

// degraded returns the /up body when a dependency check fails, nil when
// every one passes.
func (s *Server) degraded() []byte {
	var failing map[string]string
	for _, c := range s.health {
		if err := c.check(); err != nil {
			if failing == nil {
				failing = map[string]string{}
			}
			failing[c.name] = err.Error()
		}
	}
	if failing == nil {
		return nil
	}
	b, _ := json.Marshal(struct {
		OK       bool              `json:"ok"`
		Degraded map[string]string `json:"degraded"`
	}{true, failing})
	return b
}
