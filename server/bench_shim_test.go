package server

import "github.com/sockudo/sockudo/server/protocol"

// benchSubscribe subscribes c to a public channel as a socket would.
func benchSubscribe(s *Server, c *conn, name string) {
	s.join(c, name, protocol.Classify(name), nil)
}
