package server_test

import (
	"testing"

	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/server/servertest"
)

func TestLocalBroker(t *testing.T) {
	servertest.Broker(t, func(*testing.T) server.Broker { return server.NewLocalBroker() })
}

func TestLocalPresence(t *testing.T) {
	servertest.Presence(t, func(*testing.T) server.Presence { return server.NewLocalPresence() })
}
