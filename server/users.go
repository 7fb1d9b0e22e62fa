package server

import (
	"sync"

	"github.com/sockudo/sockudo/server/protocol"
)

// userIndex maps signed-in users to their sockets (server-to-user events,
// terminate_connections) and to the sockets watching them (watchlist).
// Sharded like the hub; never two shards at once.
type userIndex struct {
	shards [numShards]userShard
}

type userShard struct {
	mu    sync.Mutex // guards users
	users map[chanKey]*userEntry
}

// userEntry is one user id of one app. It exists while either list is
// non-empty.
type userEntry struct {
	conns    []*conn // sockets signed in as this user
	watchers []*conn // sockets whose watchlist names this user
}

func (u *userIndex) shard(k chanKey) *userShard { return &u.shards[shardOf(k.app, k.name)] }

// with runs fn on the entry of k under its shard lock, creating it, and
// drops it afterwards if it became empty.
func (u *userIndex) with(k chanKey, fn func(e *userEntry)) {
	sh := u.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.users == nil {
		sh.users = make(map[chanKey]*userEntry)
	}
	e := sh.users[k]
	if e == nil {
		e = &userEntry{}
		sh.users[k] = e
	}
	fn(e)
	if len(e.conns) == 0 && len(e.watchers) == 0 {
		delete(sh.users, k)
	}
}

func removeConn(list []*conn, c *conn) []*conn {
	for i, x := range list {
		if x == c {
			last := len(list) - 1
			list[i] = list[last]
			list[last] = nil
			return list[:last]
		}
	}
	return list
}

// signin registers c as user and, with watchlists enabled, tells the
// user's watchers it came online and tells c who of its watchlist is
// online.
func (u *userIndex) signin(c *conn, user *signedUser, watchlist bool) {
	k := chanKey{c.app.id, user.id}
	var online bool
	var watchers []*conn
	u.with(k, func(e *userEntry) {
		online = len(e.conns) == 0
		e.conns = append(e.conns, c)
		if online && watchlist {
			watchers = append(watchers, e.watchers...)
		}
	})
	if online && len(watchers) > 0 {
		frame := textFrame(watchlistEvent("online", []string{user.id}))
		for _, w := range watchers {
			w.send(frame)
		}
	}
	if !watchlist || len(user.watchlist) == 0 {
		return
	}
	var on, off []string
	for _, id := range user.watchlist {
		u.with(chanKey{c.app.id, id}, func(e *userEntry) {
			e.watchers = append(e.watchers, c)
			if len(e.conns) > 0 {
				on = append(on, id)
			} else {
				off = append(off, id)
			}
		})
	}
	c.sendPayload(watchlistEvents(on, off))
}

// signout removes c (on close) and tells watchers when the user's last
// socket went.
func (u *userIndex) signout(c *conn, user *signedUser, watchlist bool) {
	k := chanKey{c.app.id, user.id}
	var offline bool
	var watchers []*conn
	u.with(k, func(e *userEntry) {
		n := len(e.conns)
		e.conns = removeConn(e.conns, c)
		offline = n > 0 && len(e.conns) == 0
		if offline && watchlist {
			watchers = append(watchers, e.watchers...)
		}
	})
	if len(watchers) > 0 {
		frame := textFrame(watchlistEvent("offline", []string{user.id}))
		for _, w := range watchers {
			w.send(frame)
		}
	}
	for _, id := range user.watchlist {
		u.with(chanKey{c.app.id, id}, func(e *userEntry) { e.watchers = removeConn(e.watchers, c) })
	}
}

// conns returns a snapshot of the sockets signed in as user.
func (u *userIndex) conns(app, user string) []*conn {
	k := chanKey{app, user}
	sh := u.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.users[k]
	if e == nil {
		return nil
	}
	return append([]*conn(nil), e.conns...)
}

// deliver queues frame on every socket signed in as user.
func (u *userIndex) deliver(app, user string, frame []byte, except string) {
	k := chanKey{app, user}
	sh := u.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.users[k]; e != nil {
		for _, c := range e.conns {
			if c.socketID != except {
				c.send(frame)
			}
		}
	}
}

// watchlistEvent encodes one pusher_internal:watchlist_events entry.
func watchlistEvent(name string, ids []string) []byte {
	if name == "online" {
		return watchlistEvents(ids, nil)
	}
	return watchlistEvents(nil, ids)
}

// watchlistEvents encodes {"event":"pusher_internal:watchlist_events",
// "data":{"events":[{"name":"online","user_ids":[…]},…]}} (§2.3).
func watchlistEvents(online, offline []string) []byte {
	b := []byte(`{"event":"pusher_internal:watchlist_events","data":{"events":[`)
	first := true
	add := func(name string, ids []string) {
		if len(ids) == 0 {
			return
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"name":"`+name+`","user_ids":[`...)
		for i, id := range ids {
			if i > 0 {
				b = append(b, ',')
			}
			b = protocol.AppendString(b, id)
		}
		b = append(b, "]}"...)
	}
	add("online", online)
	add("offline", offline)
	return append(b, "]}}"...)
}
