package server

// Message is one event published to a channel: the encoded WebSocket frame,
// shared by every receiving socket, and the socket to skip.
type Message struct {
	App     string
	Channel string
	// Frame is the complete WebSocket frame; read-only once published.
	Frame []byte
	// Except is the socket_id that must not receive the message ("" = none).
	Except string
}

// Broker carries published messages to the subscribers of every node. The
// local broker, the default, delivers straight into this node's hub; a
// Redis broker (Redis mode) fans out across nodes and delivers each message
// back through the hub of every node, this one included.
//
// Publish must not block on sockets: it returns once the message is queued
// locally or handed to the transport. Delivery is at most once and ordered
// per channel from one publisher.
type Broker interface {
	Publish(m Message) error
}

// localBroker is the single-node Broker: one interface call per publish,
// none per subscriber.
type localBroker struct{ h *hub }

var _ Broker = localBroker{}

func (b localBroker) Publish(m Message) error {
	b.h.publish(m.App, m.Channel, m.Frame, m.Except)
	return nil
}
