package server

import "sync"

// channelLocks serialise the joins and leaves of one channel on this node,
// so that a presence snapshot, the hub registration and the member_added
// or member_removed that follow cannot interleave with another socket's
// (a member would miss a peer otherwise). They are striped: unrelated
// channels may share a stripe. The fan-out never takes them, and they may
// be held across Presence and Broker calls; see doc.go for their place in
// the lock order.
type channelLocks [1024]sync.Mutex

// of returns the lock of app's channel.
func (l *channelLocks) of(app, channel string) *sync.Mutex {
	return &l[hashOf(app, channel)%uint64(len(l))]
}
